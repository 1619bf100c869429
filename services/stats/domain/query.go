package domain

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/elbcloud/elb/events"
)

// Query limits.
const (
	// MaxDatapoints bounds the periods one statistics query may cover.
	MaxDatapoints = 1440
	// MaxQueryRange bounds the time range of any query.
	MaxQueryRange = 15 * 24 * time.Hour
	// MaxExtendedStatistics bounds the percentiles of one query.
	MaxExtendedStatistics = 10
	// TopWindowLength is the window of the top client IPs and URLs.
	TopWindowLength = 5 * time.Minute
	// MaxTopRange bounds the range of a top query.
	MaxTopRange = 24 * time.Hour
	// MaxTopLimit bounds the entries per window of a top query.
	MaxTopLimit = 100
	// DefaultTopLimit is used when a top query gives no limit.
	DefaultTopLimit = 10
)

// Filter selects points by dimension; empty fields match anything.
type Filter struct {
	LoadBalancer     string
	Listener         string
	AvailabilityZone string
	Pool             string
	Node             string
}

// Matches reports whether p has every dimension the filter sets.
func (f Filter) Matches(p *Point) bool {
	return (f.LoadBalancer == "" || f.LoadBalancer == p.LoadBalancer) &&
		(f.Listener == "" || f.Listener == p.Listener) &&
		(f.AvailabilityZone == "" || f.AvailabilityZone == p.AvailabilityZone) &&
		(f.Pool == "" || f.Pool == p.Pool) &&
		(f.Node == "" || f.Node == p.Node)
}

// Pairs lists the set dimensions as (name, value), sorted by name.
func (f Filter) Pairs() [][2]string {
	var out [][2]string
	for _, kv := range [][2]string{
		{events.DimAvailabilityZone, f.AvailabilityZone},
		{events.DimLoadBalancer, f.LoadBalancer},
		{events.DimListener, f.Listener},
		{events.DimNode, f.Node},
		{events.DimPool, f.Pool},
	} {
		if kv[1] != "" {
			out = append(out, kv)
		}
	}
	return out
}

// NewFilter validates query dimensions (name/value pairs). Names are limited
// to LoadBalancer, Listener, AvailabilityZone, Pool and Node, each at most
// once, with a non-empty value. When anyValue is set an empty value is
// allowed and matches anything (ListMetrics).
func NewFilter(dims [][2]string, anyValue bool) (Filter, error) {
	var f Filter
	for _, d := range dims {
		name, v := d[0], d[1]
		var dst *string
		switch name {
		case events.DimLoadBalancer:
			dst = &f.LoadBalancer
		case events.DimListener:
			dst = &f.Listener
		case events.DimAvailabilityZone:
			dst = &f.AvailabilityZone
		case events.DimPool:
			dst = &f.Pool
		case events.DimNode:
			dst = &f.Node
		default:
			return Filter{}, fmt.Errorf("%w %q (allowed: LoadBalancer, Listener, AvailabilityZone, Pool, Node)", ErrInvalidDimension, name)
		}
		if *dst != "" {
			return Filter{}, fmt.Errorf("%w %q given twice", ErrInvalidDimension, name)
		}
		if v == "" && anyValue {
			continue
		}
		if err := validDimValue(v, maxDimValueLen, false); err != nil {
			return Filter{}, fmt.Errorf("%w %s: %v", ErrInvalidDimension, name, err)
		}
		*dst = v
	}
	return f, nil
}

// Percentile is a requested extended statistic.
type Percentile struct {
	Name  string  // as requested, e.g. "p99" or "p99.9"
	Level float64 // in (0, 1]
}

// ParsePercentile parses "pNN" or "pNN.N…" with 0 < NN ≤ 100.
func ParsePercentile(s string) (Percentile, error) {
	num, ok := strings.CutPrefix(s, "p")
	if !ok || num == "" || len(num) > 8 || strings.ContainsAny(num, "+-eE") {
		return Percentile{}, fmt.Errorf("%w %q: want pNN or pNN.N (e.g. p50, p99.9)", ErrInvalidStatistic, s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 || v > 100 || math.IsNaN(v) {
		return Percentile{}, fmt.Errorf("%w %q: percentile must be in (0, 100]", ErrInvalidStatistic, s)
	}
	return Percentile{Name: s, Level: v / 100}, nil
}

// Stat is a basic statistic.
type Stat string

// Basic statistics.
const (
	StatAverage     Stat = "Average"
	StatSum         Stat = "Sum"
	StatMinimum     Stat = "Minimum"
	StatMaximum     Stat = "Maximum"
	StatSampleCount Stat = "SampleCount"
)

// StatisticsQuery is a validated GetMetricStatistics query. Samples whose
// interval starts in [Start, End) count; they fall into periods aligned to
// multiples of Period since the Unix epoch.
type StatisticsQuery struct {
	Metric      string
	Filter      Filter
	Start, End  time.Time
	Period      time.Duration
	Stats       []Stat
	Percentiles []Percentile
}

// NewStatisticsQuery validates a statistics query. Start and End are
// truncated to whole seconds.
func NewStatisticsQuery(metric string, dims [][2]string, start, end time.Time, periodSeconds int64, stats, extended []string) (StatisticsQuery, error) {
	if !events.KnownMetric(metric) {
		return StatisticsQuery{}, fmt.Errorf("%w %q", ErrUnknownMetric, metric)
	}
	f, err := NewFilter(dims, false)
	if err != nil {
		return StatisticsQuery{}, err
	}
	iv := int64(SampleInterval / time.Second)
	if periodSeconds <= 0 || periodSeconds%iv != 0 {
		return StatisticsQuery{}, fmt.Errorf("%w %d s: must be a positive multiple of %d s", ErrInvalidPeriod, periodSeconds, iv)
	}
	if periodSeconds > int64(MaxQueryRange/time.Second) {
		return StatisticsQuery{}, fmt.Errorf("%w %d s: at most %d s", ErrInvalidPeriod, periodSeconds, int64(MaxQueryRange/time.Second))
	}
	period := time.Duration(periodSeconds) * time.Second
	start, end, err = validRange(start, end)
	if err != nil {
		return StatisticsQuery{}, err
	}
	first := Bucket(start, period)
	n := (end.Sub(first) + period - 1) / period
	if n > MaxDatapoints {
		return StatisticsQuery{}, fmt.Errorf("%w: %d datapoints of %d s, at most %d per query", ErrRangeTooLarge, n, periodSeconds, MaxDatapoints)
	}
	q := StatisticsQuery{Metric: metric, Filter: f, Start: start, End: end, Period: period}
	for _, s := range stats {
		st := Stat(s)
		switch st {
		case StatAverage, StatSum, StatMinimum, StatMaximum, StatSampleCount:
		default:
			return StatisticsQuery{}, fmt.Errorf("%w %q (allowed: Average, Sum, Minimum, Maximum, SampleCount)", ErrInvalidStatistic, s)
		}
		if !slices.Contains(q.Stats, st) {
			q.Stats = append(q.Stats, st)
		}
	}
	if len(extended) > MaxExtendedStatistics {
		return StatisticsQuery{}, fmt.Errorf("%w: %d extended statistics, at most %d", ErrInvalidStatistic, len(extended), MaxExtendedStatistics)
	}
	for _, e := range extended {
		p, err := ParsePercentile(e)
		if err != nil {
			return StatisticsQuery{}, err
		}
		if !slices.ContainsFunc(q.Percentiles, func(x Percentile) bool { return x.Name == p.Name }) {
			q.Percentiles = append(q.Percentiles, p)
		}
	}
	if len(q.Stats) == 0 && len(q.Percentiles) == 0 {
		return StatisticsQuery{}, fmt.Errorf("%w: give at least one of Statistics or ExtendedStatistics", ErrInvalidStatistic)
	}
	return q, nil
}

func validRange(start, end time.Time) (time.Time, time.Time, error) {
	if start.Before(minTime) || end.Before(minTime) {
		return start, end, fmt.Errorf("%w: StartTime and EndTime are required", ErrInvalidTimeRange)
	}
	start, end = start.UTC().Truncate(time.Second), end.UTC().Truncate(time.Second)
	if !end.After(start) {
		return start, end, fmt.Errorf("%w: EndTime %s must be after StartTime %s", ErrInvalidTimeRange, end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	if end.Sub(start) > MaxQueryRange {
		return start, end, fmt.Errorf("%w: %s, at most %s", ErrRangeTooLarge, end.Sub(start), MaxQueryRange)
	}
	return start, end, nil
}

// Bucket returns the start of the period t falls in (periods are aligned to
// multiples of period since the Unix epoch).
func Bucket(t time.Time, period time.Duration) time.Time {
	sec := t.Unix()
	p := int64(period / time.Second)
	return time.Unix(sec-sec%p, 0).UTC()
}

// Datapoint is one period's statistics as a store returns them. All basic
// statistics are always filled; Percentiles holds only those with values.
type Datapoint struct {
	Start       time.Time
	SampleCount float64
	Sum         float64
	// Min and Max are over points with Count > 0; 0 when there is none.
	Min, Max    float64
	Percentiles map[string]float64
}

// Average is Sum / SampleCount (CloudWatch statistic-set semantics), 0 for
// a period without counted samples.
func (d Datapoint) Average() float64 {
	if d.SampleCount == 0 {
		return 0
	}
	return d.Sum / d.SampleCount
}

// QuantileExact returns the level quantile of values the way ClickHouse's
// quantileExact does: the element at index floor(level·n) of the sorted
// values (the last for level 1). It sorts values in place.
func QuantileExact(values []float64, level float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	sort.Float64s(values)
	n := len(values) - 1
	if level < 1 {
		n = int(level * float64(len(values)))
	}
	return values[n]
}

// Unit is the CloudWatch unit of a metric.
func Unit(metric string) string {
	switch metric {
	case events.MetricLatency:
		return "Seconds"
	case events.MetricNodeCPUUtilization, events.MetricNodeMemoryUtilization:
		return "Percent"
	case events.MetricProcessedBytesIn, events.MetricProcessedBytesOut, events.MetricNodeNetworkIn, events.MetricNodeNetworkOut:
		return "Bytes"
	default:
		return "Count"
	}
}

// ListQuery is a validated ListMetrics query.
type ListQuery struct {
	Metric string // empty: any
	// Filter values must match; HasDim names must be present with any value.
	Filter Filter
	HasDim []string
}

// NewListQuery validates a ListMetrics query; filters with an empty value
// only require the dimension to be present.
func NewListQuery(metric string, dims [][2]string) (ListQuery, error) {
	if metric != "" && !events.KnownMetric(metric) {
		return ListQuery{}, fmt.Errorf("%w %q", ErrUnknownMetric, metric)
	}
	f, err := NewFilter(dims, true)
	if err != nil {
		return ListQuery{}, err
	}
	q := ListQuery{Metric: metric, Filter: f}
	for _, d := range dims {
		if d[1] == "" {
			q.HasDim = append(q.HasDim, d[0])
		}
	}
	return q, nil
}

// MetricDims is one metric with one dimension combination (Point.Dims form).
type MetricDims struct {
	Metric string
	Dims   string
}

// Matches reports whether a stored combination is selected by q.
func (q ListQuery) Matches(metric, dims string) bool {
	if q.Metric != "" && metric != q.Metric {
		return false
	}
	got := map[string]string{}
	for _, kv := range ParseDims(dims) {
		got[kv[0]] = kv[1]
	}
	for _, kv := range q.Filter.Pairs() {
		if got[kv[0]] != kv[1] {
			return false
		}
	}
	for _, name := range q.HasDim {
		if got[name] == "" {
			return false
		}
	}
	return true
}

// TopQuery is a validated top client IPs / URLs query.
type TopQuery struct {
	LoadBalancer string
	Metric       string // MetricClientIPRequestCount or MetricURLRequestCount
	Start, End   time.Time
	Limit        int
}

// Top kinds as the API names them.
const (
	TopKindClientIP = "client_ip"
	TopKindURL      = "url"
)

// NewTopQuery validates a top query.
func NewTopQuery(lb, kind string, start, end time.Time, limit int) (TopQuery, error) {
	if err := validDimValue(lb, maxDimValueLen, false); err != nil {
		return TopQuery{}, fmt.Errorf("%w LoadBalancer: %v", ErrInvalidDimension, err)
	}
	q := TopQuery{LoadBalancer: lb, Limit: limit}
	switch kind {
	case TopKindClientIP:
		q.Metric = events.MetricClientIPRequestCount
	case TopKindURL:
		q.Metric = events.MetricURLRequestCount
	default:
		return TopQuery{}, fmt.Errorf("%w: top kind %q (allowed: client_ip, url)", ErrInvalidQuery, kind)
	}
	var err error
	if q.Start, q.End, err = validRange(start, end); err != nil {
		return TopQuery{}, err
	}
	if q.End.Sub(q.Start) > MaxTopRange {
		return TopQuery{}, fmt.Errorf("%w: top range %s, at most %s", ErrRangeTooLarge, q.End.Sub(q.Start), MaxTopRange)
	}
	if q.Limit == 0 {
		q.Limit = DefaultTopLimit
	}
	if q.Limit < 1 || q.Limit > MaxTopLimit {
		return TopQuery{}, fmt.Errorf("%w: limit %d, must be 1 to %d", ErrInvalidQuery, limit, MaxTopLimit)
	}
	return q, nil
}

// TopEntry is one key's request count in a window.
type TopEntry struct {
	Key      string
	Requests float64
}

// TopWindow is one window's top entries.
type TopWindow struct {
	Start   time.Time
	Entries []TopEntry
}

// SortTop orders entries by requests descending, then key ascending, and
// keeps at most limit.
func SortTop(e []TopEntry, limit int) []TopEntry {
	sort.Slice(e, func(i, j int) bool {
		if e[i].Requests != e[j].Requests {
			return e[i].Requests > e[j].Requests
		}
		return e[i].Key < e[j].Key
	})
	if len(e) > limit {
		e = e[:limit]
	}
	return e
}

// NewLBStatsQuery validates a load balancer id for LBStats.
func NewLBStatsQuery(lb string) error {
	if err := validDimValue(lb, maxDimValueLen, false); err != nil {
		return fmt.Errorf("%w LoadBalancer: %v", ErrInvalidDimension, err)
	}
	return nil
}

// LBStats is the Octavia statistics summary of a load balancer.
type LBStats struct {
	BytesIn           float64
	BytesOut          float64
	ActiveConnections float64
	TotalConnections  float64
	RequestErrors     float64
}

// ActiveWindow: a node's latest ActiveConnectionCount counts toward
// LBStats only if it is at most this much older than the load balancer's
// newest ActiveConnectionCount sample (a node that stopped reporting drops
// out).
const ActiveWindow = 5 * time.Minute

// LBStats metric mapping.
var (
	// RequestErrorMetrics are summed into LBStats.RequestErrors.
	RequestErrorMetrics = []string{events.MetricHTTPCodeELB4XX, events.MetricHTTPCodeELB5XX}
)

// AgentLatest is one agent's newest ActiveConnectionCount (summed over the
// points of that interval) for LBStats.
type AgentLatest struct {
	TS    int64 // interval start, Unix seconds
	Value float64
}

// SumActive adds the latest values of the agents whose latest sample is
// within ActiveWindow of the newest one.
func SumActive(ls []AgentLatest) float64 {
	var newest int64 = math.MinInt64
	for _, l := range ls {
		newest = max(newest, l.TS)
	}
	var t float64
	for _, l := range ls {
		if l.TS >= newest-int64(ActiveWindow/time.Second) {
			t += l.Value
		}
	}
	return t
}
