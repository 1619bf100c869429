package app

import (
	"context"
	"fmt"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/apigw/domain"
	"github.com/elbcloud/elb/services/apigw/readmodel"
	"github.com/elbcloud/elb/services/stats/statsapi"
)

// Stats is what the gateway asks the stats service (statsapi.Client).
type Stats interface {
	GetMetricStatistics(ctx context.Context, q statsapi.StatisticsQuery) (statsapi.StatisticsResult, error)
	ListMetrics(ctx context.Context, q statsapi.ListMetricsQuery) (statsapi.ListMetricsResult, error)
	Top(ctx context.Context, lbID, kind string, start, end time.Time, limit int) (statsapi.TopResult, error)
	LBStats(ctx context.Context, lbID string) (statsapi.LBStats, error)
}

// Visible checks that the caller may see a resource of kind and returns its
// load balancer id.
func (s *Service) Visible(c Cmd, kind, id string) (string, error) { return s.owned(c, kind, id) }

// Events streams the audit log undecoded (the fast path): a tenant sees
// only its own project's events.
func (s *Service) Events(ctx context.Context, c Cmd, f eventstore.Filter, fn func(eventstore.RawEvent) error) error {
	if !c.Admin {
		if f.ProjectID != "" && f.ProjectID != c.P.Project {
			return fmt.Errorf("events of project %s: %w", f.ProjectID, domain.ErrNotFound)
		}
		f.ProjectID = c.P.Project
	}
	if err := f.Validate(); err != nil {
		return domain.Invalid("filter", "%v", err)
	}
	return s.store.ReplayRaw(ctx, f, fn)
}

// LBStats returns a load balancer's Octavia statistics.
func (s *Service) LBStats(ctx context.Context, c Cmd, id string) (statsapi.LBStats, error) {
	if _, err := s.owned(c, readmodel.KindLoadBalancer, id); err != nil {
		return statsapi.LBStats{}, err
	}
	return s.stats.LBStats(ctx, id)
}

// ListenerStats sums a listener's counters over the last hour.
func (s *Service) ListenerStats(ctx context.Context, c Cmd, id string) (statsapi.LBStats, error) {
	lbID, err := s.owned(c, readmodel.KindListener, id)
	if err != nil {
		return statsapi.LBStats{}, err
	}
	end := s.now().UTC().Truncate(10 * time.Second).Add(10 * time.Second)
	start := end.Add(-time.Hour)
	dims := []statsapi.Dimension{{Name: "LoadBalancer", Value: lbID}, {Name: "Listener", Value: id}}
	sum := func(metric, stat string) (int64, error) {
		r, err := s.stats.GetMetricStatistics(ctx, statsapi.StatisticsQuery{MetricName: metric, Dimensions: dims,
			StartTime: start, EndTime: end, Period: 3600, Statistics: []string{stat}})
		if err != nil {
			return 0, err
		}
		var t float64
		for _, d := range r.Datapoints {
			if stat == statsapi.StatSum && d.Sum != nil {
				t += *d.Sum
			}
			if stat == statsapi.StatMaximum && d.Maximum != nil && *d.Maximum > t {
				t = *d.Maximum
			}
		}
		return int64(t), nil
	}
	var out statsapi.LBStats
	for _, q := range []struct {
		metric, stat string
		dst          *int64
	}{
		{events.MetricProcessedBytesIn, statsapi.StatSum, &out.BytesIn},
		{events.MetricProcessedBytesOut, statsapi.StatSum, &out.BytesOut},
		{events.MetricActiveConnectionCount, statsapi.StatMaximum, &out.ActiveConnections},
		{events.MetricNewConnectionCount, statsapi.StatSum, &out.TotalConnections},
		{events.MetricBackendConnectionErrors, statsapi.StatSum, &out.RequestErrors},
	} {
		v, err := sum(q.metric, q.stat)
		if err != nil {
			return statsapi.LBStats{}, err
		}
		*q.dst = v
	}
	return out, nil
}

// MetricStatistics answers a GetMetricStatistics query; a tenant must name a
// LoadBalancer dimension of its own.
func (s *Service) MetricStatistics(ctx context.Context, c Cmd, q statsapi.StatisticsQuery) (statsapi.StatisticsResult, error) {
	if !c.Admin {
		lb := ""
		for _, d := range q.Dimensions {
			if d.Name == "LoadBalancer" {
				lb = d.Value
			}
		}
		if lb == "" {
			return statsapi.StatisticsResult{}, domain.Invalid("Dimensions", "a LoadBalancer dimension is required")
		}
		if _, err := s.owned(c, readmodel.KindLoadBalancer, lb); err != nil {
			return statsapi.StatisticsResult{}, err
		}
	}
	return s.stats.GetMetricStatistics(ctx, q)
}

// ListMetrics lists metrics; a tenant sees only its load balancers' metrics.
func (s *Service) ListMetrics(ctx context.Context, c Cmd, q statsapi.ListMetricsQuery) (statsapi.ListMetricsResult, error) {
	res, err := s.stats.ListMetrics(ctx, q)
	if err != nil || c.Admin {
		return res, err
	}
	kept := res.Metrics[:0]
	for _, m := range res.Metrics {
		for _, d := range m.Dimensions {
			if d.Name == "LoadBalancer" {
				if _, err := s.owned(c, readmodel.KindLoadBalancer, d.Value); err == nil {
					kept = append(kept, m)
				}
				break
			}
		}
	}
	res.Metrics = kept
	return res, nil
}

// Top returns a load balancer's top client IPs or URLs.
func (s *Service) Top(ctx context.Context, c Cmd, id, kind string, start, end time.Time, limit int) (statsapi.TopResult, error) {
	if _, err := s.owned(c, readmodel.KindLoadBalancer, id); err != nil {
		return statsapi.TopResult{}, err
	}
	return s.stats.Top(ctx, id, kind, start, end, limit)
}

// noStats answers when no stats service is configured.
type noStats struct{}

func (noStats) GetMetricStatistics(context.Context, statsapi.StatisticsQuery) (statsapi.StatisticsResult, error) {
	return statsapi.StatisticsResult{}, fmt.Errorf("%w: no stats service configured", statsapi.ErrUnavailable)
}

func (noStats) ListMetrics(context.Context, statsapi.ListMetricsQuery) (statsapi.ListMetricsResult, error) {
	return statsapi.ListMetricsResult{}, fmt.Errorf("%w: no stats service configured", statsapi.ErrUnavailable)
}

func (noStats) Top(context.Context, string, string, time.Time, time.Time, int) (statsapi.TopResult, error) {
	return statsapi.TopResult{}, fmt.Errorf("%w: no stats service configured", statsapi.ErrUnavailable)
}

func (noStats) LBStats(context.Context, string) (statsapi.LBStats, error) {
	return statsapi.LBStats{}, fmt.Errorf("%w: no stats service configured", statsapi.ErrUnavailable)
}
