// Package app holds the stats service's query handlers: each validates a
// request into a domain query, asks the Store, and shapes the answer.
package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/elbcloud/elb/services/stats/domain"
	"github.com/elbcloud/elb/services/stats/statsapi"
)

// Store keeps metric samples and answers queries on them. Implementations
// (ClickHouse, the embedded store) must give the same answers; the contract
// suite in package storetest checks that.
type Store interface {
	// Insert stores validated batches. It is idempotent per Batch.ID: a batch
	// inserted before (e.g. redelivered after a lost ack) is not stored twice.
	// When Insert returns nil every batch is durable.
	Insert(ctx context.Context, batches []domain.Batch) error
	// Statistics returns one datapoint per period with samples, sorted.
	Statistics(ctx context.Context, q domain.StatisticsQuery) ([]domain.Datapoint, error)
	// ListMetrics returns distinct metric and dimension combinations matching
	// q, sorted by metric then dims, at most limit of them.
	ListMetrics(ctx context.Context, q domain.ListQuery, limit int) ([]domain.MetricDims, error)
	// Top returns the top keys per TopWindowLength window, windows sorted.
	Top(ctx context.Context, q domain.TopQuery) ([]domain.TopWindow, error)
	// LBStats returns the Octavia summary of a load balancer.
	LBStats(ctx context.Context, lb string) (domain.LBStats, error)
}

// Queries answers the query endpoint's requests.
type Queries struct {
	store Store
}

// NewQueries returns query handlers over store.
func NewQueries(store Store) *Queries { return &Queries{store: store} }

// toAPI maps domain and store errors to the statsapi sentinels: validation
// errors stay invalid queries, everything else from a store is treated as
// the store being unavailable.
func toAPI(op string, err error) error {
	if errors.Is(err, domain.ErrInvalidQuery) {
		return fmt.Errorf("%w: %s", statsapi.ErrInvalidQuery, strings.TrimPrefix(err.Error(), domain.ErrInvalidQuery.Error()+": "))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %v", statsapi.ErrUnavailable, op, err)
	}
	return fmt.Errorf("%w: %s: store: %v", statsapi.ErrUnavailable, op, err)
}

func pairs(ds []statsapi.Dimension) [][2]string {
	out := make([][2]string, len(ds))
	for i, d := range ds {
		out[i] = [2]string{d.Name, d.Value}
	}
	return out
}

// GetMetricStatistics handles a statistics query.
func (h *Queries) GetMetricStatistics(ctx context.Context, req statsapi.StatisticsQuery) (statsapi.StatisticsResult, error) {
	q, err := domain.NewStatisticsQuery(req.MetricName, pairs(req.Dimensions), req.StartTime, req.EndTime, req.Period, req.Statistics, req.ExtendedStatistics)
	if err != nil {
		return statsapi.StatisticsResult{}, toAPI("statistics", err)
	}
	dps, err := h.store.Statistics(ctx, q)
	if err != nil {
		return statsapi.StatisticsResult{}, toAPI("statistics", err)
	}
	unit := domain.Unit(q.Metric)
	res := statsapi.StatisticsResult{Label: q.Metric, Datapoints: make([]statsapi.Datapoint, 0, len(dps))}
	for _, d := range dps {
		out := statsapi.Datapoint{Timestamp: d.Start, Unit: unit}
		for _, s := range q.Stats {
			v := 0.0
			switch s {
			case domain.StatAverage:
				v = d.Average()
				out.Average = &v
			case domain.StatSum:
				v = d.Sum
				out.Sum = &v
			case domain.StatMinimum:
				v = d.Min
				out.Minimum = &v
			case domain.StatMaximum:
				v = d.Max
				out.Maximum = &v
			case domain.StatSampleCount:
				v = d.SampleCount
				out.SampleCount = &v
			}
		}
		for _, p := range q.Percentiles {
			if v, ok := d.Percentiles[p.Name]; ok {
				if out.ExtendedStatistics == nil {
					out.ExtendedStatistics = map[string]float64{}
				}
				out.ExtendedStatistics[p.Name] = v
			}
		}
		res.Datapoints = append(res.Datapoints, out)
	}
	return res, nil
}

// ListMetrics handles a ListMetrics query.
func (h *Queries) ListMetrics(ctx context.Context, req statsapi.ListMetricsQuery) (statsapi.ListMetricsResult, error) {
	dims := make([][2]string, len(req.Dimensions))
	for i, d := range req.Dimensions {
		dims[i] = [2]string{d.Name, d.Value}
	}
	q, err := domain.NewListQuery(req.MetricName, dims)
	if err != nil {
		return statsapi.ListMetricsResult{}, toAPI("list metrics", err)
	}
	ms, err := h.store.ListMetrics(ctx, q, statsapi.MaxListMetrics+1)
	if err != nil {
		return statsapi.ListMetricsResult{}, toAPI("list metrics", err)
	}
	res := statsapi.ListMetricsResult{Metrics: make([]statsapi.Metric, 0, len(ms))}
	if len(ms) > statsapi.MaxListMetrics {
		ms, res.Truncated = ms[:statsapi.MaxListMetrics], true
	}
	for _, m := range ms {
		out := statsapi.Metric{MetricName: m.Metric, Dimensions: []statsapi.Dimension{}}
		for _, kv := range domain.ParseDims(m.Dims) {
			out.Dimensions = append(out.Dimensions, statsapi.Dimension{Name: kv[0], Value: kv[1]})
		}
		res.Metrics = append(res.Metrics, out)
	}
	return res, nil
}

// Top handles a top client IPs / URLs query.
func (h *Queries) Top(ctx context.Context, req statsapi.TopQuery) (statsapi.TopResult, error) {
	q, err := domain.NewTopQuery(req.LoadBalancer, req.Kind, req.StartTime, req.EndTime, req.Limit)
	if err != nil {
		return statsapi.TopResult{}, toAPI("top", err)
	}
	ws, err := h.store.Top(ctx, q)
	if err != nil {
		return statsapi.TopResult{}, toAPI("top", err)
	}
	res := statsapi.TopResult{Kind: req.Kind, Windows: make([]statsapi.TopWindow, 0, len(ws))}
	for _, w := range ws {
		out := statsapi.TopWindow{Start: w.Start, End: w.Start.Add(domain.TopWindowLength), Entries: make([]statsapi.TopEntry, 0, len(w.Entries))}
		for _, e := range w.Entries {
			out.Entries = append(out.Entries, statsapi.TopEntry{Key: e.Key, Requests: e.Requests})
		}
		res.Windows = append(res.Windows, out)
	}
	return res, nil
}

// LBStats handles an Octavia statistics query.
func (h *Queries) LBStats(ctx context.Context, req statsapi.LBStatsQuery) (statsapi.LBStats, error) {
	if err := domain.NewLBStatsQuery(req.LoadBalancer); err != nil {
		return statsapi.LBStats{}, toAPI("lbstats", err)
	}
	s, err := h.store.LBStats(ctx, req.LoadBalancer)
	if err != nil {
		return statsapi.LBStats{}, toAPI("lbstats", err)
	}
	return statsapi.LBStats{
		BytesIn:           int64(s.BytesIn),
		BytesOut:          int64(s.BytesOut),
		ActiveConnections: int64(s.ActiveConnections + 0.5),
		TotalConnections:  int64(s.TotalConnections),
		RequestErrors:     int64(s.RequestErrors),
	}, nil
}
