package memstore_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/stats/adapters/memstore"
	"github.com/elbcloud/elb/services/stats/domain"
)

// BenchmarkQuery24h: the embedded store's latency for 24 h at a 60 s period
// over 10 s samples of one load balancer (the ClickHouse benchmark's data:
// 8 640 intervals × 2 listeners × 20 metrics). Run with -benchtime=1x.
func BenchmarkQuery24h(b *testing.B) {
	s, err := memstore.Open(b.TempDir(), memstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	end := time.Now().UTC().Truncate(time.Hour)
	base := end.Add(-24 * time.Hour)
	var chunk []domain.Batch
	for i := 0; i < 8640; i++ {
		sb := events.SampleBatch{NodeID: "node-0", Time: base.Add(time.Duration(i+1) * 10 * time.Second), Interval: 10 * time.Second}
		for l := 0; l < 2; l++ {
			for _, m := range events.Metrics[:20] {
				p := events.SamplePoint{Metric: m, Dimensions: map[string]string{"LoadBalancer": "lb-bench", "Listener": fmt.Sprintf("l%d", l)},
					Count: 3, Sum: float64(i%100) * 3, Min: 1, Max: float64(i%100) + 1}
				if m == events.MetricLatency {
					p.Values = []float64{0.01, 0.02, float64(i%50) / 100}
				}
				sb.Points = append(sb.Points, p)
			}
		}
		bt, err := domain.NewBatch(sb)
		if err != nil {
			b.Fatal(err)
		}
		if chunk = append(chunk, bt); len(chunk) == 500 {
			if err := s.Insert(ctx, chunk); err != nil {
				b.Fatal(err)
			}
			chunk = nil
		}
	}
	if err := s.Insert(ctx, chunk); err != nil {
		b.Fatal(err)
	}
	lb := [][2]string{{"LoadBalancer", "lb-bench"}}
	all := []string{"Average", "Sum", "Minimum", "Maximum", "SampleCount"}
	b.ResetTimer()
	for _, c := range []struct {
		name   string
		metric string
		ext    []string
	}{{"basic", "RequestCount", nil}, {"percentiles", "Latency", []string{"p50", "p90", "p99"}}} {
		q, err := domain.NewStatisticsQuery(c.metric, lb, base, end, 60, all, c.ext)
		if err != nil {
			b.Fatal(err)
		}
		const n = 100
		lat := make([]time.Duration, 0, n)
		for i := 0; i < n; i++ {
			t0 := time.Now()
			dps, err := s.Statistics(ctx, q)
			if err != nil || len(dps) != 1440 {
				b.Fatalf("%d datapoints, %v", len(dps), err)
			}
			lat = append(lat, time.Since(t0))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[n/2].Microseconds())/1000, c.name+"-p50-ms")
		b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, c.name+"-p99-ms")
		b.Logf("%s: p50 %v p99 %v", c.name, lat[n/2], lat[n*99/100])
	}
}
