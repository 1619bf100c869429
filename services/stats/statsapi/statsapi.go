// Package statsapi is the client side of the stats service's query endpoint:
// the request and reply types (in the CloudWatch GetMetricStatistics and
// ListMetrics shapes) and a Client that sends them over NATS request/reply.
//
// It imports no storage code, so the API gateway, the scaler and the alarm
// service can depend on it cheaply. Tenancy is not checked here: callers (the
// gateway) must check that the tenant owns the load balancer they ask about.
package statsapi

import (
	"errors"
	"time"
)

// NATS subjects the stats service answers on (request/reply, JSON bodies).
const (
	SubjectStatistics = "elb.stats.query.statistics"
	SubjectList       = "elb.stats.query.list"
	SubjectTop        = "elb.stats.query.top"
	SubjectLBStats    = "elb.stats.query.lbstats"
	// QueueGroup is the queue group every stats service instance joins, so a
	// request is answered once.
	QueueGroup = "elb-stats"
)

// Statistic names (CloudWatch).
const (
	StatAverage     = "Average"
	StatSum         = "Sum"
	StatMinimum     = "Minimum"
	StatMaximum     = "Maximum"
	StatSampleCount = "SampleCount"
)

// Top kinds.
const (
	TopClientIP = "client_ip"
	TopURL      = "url"
)

// ErrInvalidQuery is wrapped by every error caused by the query itself
// (unknown metric, bad period, range too large, …). The gateway maps it to
// 400; the wrapped message is meant for the user.
var ErrInvalidQuery = errors.New("invalid query")

// ErrUnavailable is wrapped when the stats service or its store cannot answer
// now (no responder, timeout, store down). The gateway maps it to 503.
var ErrUnavailable = errors.New("stats unavailable")

// ErrInternal is wrapped for any other failure reported by the service.
var ErrInternal = errors.New("stats internal error")

// Dimension is one name/value pair of a metric.
type Dimension struct {
	Name  string `json:"Name"`
	Value string `json:"Value"`
}

// StatisticsQuery is a GetMetricStatistics request. Period is in seconds and
// must be a positive multiple of 10 (the sample interval). Datapoints cover
// samples whose interval starts in [StartTime, EndTime); each datapoint's
// Timestamp is the start of its period, aligned to multiples of Period since
// the Unix epoch.
type StatisticsQuery struct {
	MetricName         string      `json:"MetricName"`
	Dimensions         []Dimension `json:"Dimensions,omitempty"`
	StartTime          time.Time   `json:"StartTime"`
	EndTime            time.Time   `json:"EndTime"`
	Period             int64       `json:"Period"`
	Statistics         []string    `json:"Statistics,omitempty"`
	ExtendedStatistics []string    `json:"ExtendedStatistics,omitempty"`
}

// Datapoint is one period of a StatisticsResult. Only the requested
// statistics are set. ExtendedStatistics (percentiles such as "p99") are
// exact over the raw values agents sent; a percentile is absent for a period
// in which no raw values were sent.
type Datapoint struct {
	Timestamp          time.Time          `json:"Timestamp"`
	Average            *float64           `json:"Average,omitempty"`
	Sum                *float64           `json:"Sum,omitempty"`
	Minimum            *float64           `json:"Minimum,omitempty"`
	Maximum            *float64           `json:"Maximum,omitempty"`
	SampleCount        *float64           `json:"SampleCount,omitempty"`
	ExtendedStatistics map[string]float64 `json:"ExtendedStatistics,omitempty"`
	Unit               string             `json:"Unit,omitempty"`
}

// StatisticsResult is the GetMetricStatistics answer. Periods without samples
// have no datapoint. Datapoints are sorted by Timestamp.
type StatisticsResult struct {
	Label      string      `json:"Label"`
	Datapoints []Datapoint `json:"Datapoints"`
}

// DimensionFilter restricts ListMetrics; an empty Value matches any value.
type DimensionFilter struct {
	Name  string `json:"Name"`
	Value string `json:"Value,omitempty"`
}

// ListMetricsQuery is a ListMetrics request; empty fields match everything.
type ListMetricsQuery struct {
	MetricName string            `json:"MetricName,omitempty"`
	Dimensions []DimensionFilter `json:"Dimensions,omitempty"`
}

// Metric is one metric name with one dimension combination.
type Metric struct {
	MetricName string      `json:"MetricName"`
	Dimensions []Dimension `json:"Dimensions"`
}

// ListMetricsResult lists metrics with stored samples, sorted by name and
// dimensions, at most MaxListMetrics of them.
type ListMetricsResult struct {
	Metrics   []Metric `json:"Metrics"`
	Truncated bool     `json:"Truncated,omitempty"`
}

// MaxListMetrics bounds a ListMetrics answer.
const MaxListMetrics = 500

// TopQuery asks for the top client IPs or URLs of one load balancer, per
// 5-minute window (aligned to multiples of 300 s since the epoch).
type TopQuery struct {
	LoadBalancer string    `json:"LoadBalancer"`
	Kind         string    `json:"Kind"` // TopClientIP or TopURL
	StartTime    time.Time `json:"StartTime"`
	EndTime      time.Time `json:"EndTime"`
	Limit        int       `json:"Limit"` // 1..100; 0 means 10
}

// TopEntry is one client IP or URL with its request count in a window.
type TopEntry struct {
	Key      string  `json:"Key"`
	Requests float64 `json:"Requests"`
}

// TopWindow is one 5-minute window, entries sorted by Requests descending
// then Key ascending.
type TopWindow struct {
	Start   time.Time  `json:"Start"`
	End     time.Time  `json:"End"`
	Entries []TopEntry `json:"Entries"`
}

// TopResult is the Top answer; windows without data are omitted.
type TopResult struct {
	Kind    string      `json:"Kind"`
	Windows []TopWindow `json:"Windows"`
}

// LBStatsQuery asks for the Octavia /stats summary of a load balancer.
type LBStatsQuery struct {
	LoadBalancer string `json:"LoadBalancer"`
}

// LBStats is the Octavia load balancer statistics body ("stats" object of
// GET /v2.0/lbaas/loadbalancers/{id}/stats). Counters are totals over the
// retained samples; ActiveConnections is the sum over nodes of each node's
// latest ActiveConnectionCount.
type LBStats struct {
	BytesIn           int64 `json:"bytes_in"`
	BytesOut          int64 `json:"bytes_out"`
	ActiveConnections int64 `json:"active_connections"`
	TotalConnections  int64 `json:"total_connections"`
	RequestErrors     int64 `json:"request_errors"`
}
