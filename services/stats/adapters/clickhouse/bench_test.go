package clickhouse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/stats/adapters/clickhouse"
	"github.com/elbcloud/elb/services/stats/adapters/clickhouse/chtest"
	"github.com/elbcloud/elb/services/stats/app"
	"github.com/elbcloud/elb/services/stats/domain"
	"github.com/elbcloud/elb/services/stats/ports"
	"github.com/elbcloud/elb/services/stats/statsapi"
)

// benchBatches builds agent batches of one load balancer: nodes × intervals
// batches, each with 20 metrics for each of listeners listeners.
func benchBatches(base time.Time, nodes, intervals, listeners int) []events.SampleBatch {
	var out []events.SampleBatch
	for i := 0; i < intervals; i++ {
		for n := 0; n < nodes; n++ {
			sb := events.SampleBatch{NodeID: fmt.Sprintf("node-%d", n), Role: events.RoleTengine,
				Time: base.Add(time.Duration(i+1) * 10 * time.Second), Interval: 10 * time.Second}
			for l := 0; l < listeners; l++ {
				for _, m := range events.Metrics[:20] {
					p := events.SamplePoint{Metric: m, Dimensions: map[string]string{"LoadBalancer": "lb-bench", "Listener": fmt.Sprintf("l%d", l), "AvailabilityZone": "az1", "Node": sb.NodeID},
						Count: 3, Sum: float64(i%100) * 3, Min: 1, Max: float64(i%100) + 1}
					if m == events.MetricLatency {
						p.Values = []float64{0.01, 0.02, float64(i%50) / 100}
					}
					sb.Points = append(sb.Points, p)
				}
			}
			out = append(out, sb)
		}
	}
	return out
}

func withDB(dsn, suffix string) string {
	path, q, _ := strings.Cut(dsn, "?")
	if q != "" {
		q = "?" + q
	}
	return path + suffix + q
}

// BenchmarkIngestVsRawInsert measures samples/s through the whole ingest
// path (JetStream consumer → JSON decode → validation → dedupe lookup →
// batch insert → ack) against clickhouse-go batch inserts (PrepareBatch,
// Append per row, Send) of the same rows in blocks of the same size into the
// same schema, in the same run. The two alternate in rounds, with the
// server's merges finished between phases, so that load from other
// processes on the machine hits both alike. Run with -benchtime=1x.
func BenchmarkIngestVsRawInsert(b *testing.B) {
	srv := chtest.Start(b)
	ctx := context.Background()
	const rounds, flush = 4, 20000
	rawDSN := withDB(srv.DSN, "_raw")
	rawStore := open(b, rawDSN) // creates the schema
	opts, err := ch.ParseDSN(rawDSN)
	if err != nil {
		b.Fatal(err)
	}
	opts.Compression = &ch.Compression{Method: ch.CompressionLZ4}
	conn, err := ch.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	store := open(b, withDB(srv.DSN, "_ingest"))
	bus := testkit.NATSWith(b, natsx.ServerConfig{UnsafeNoSync: os.Getenv("BENCH_NOSYNC") != ""})

	counting := &countingInserter{store: store}
	reg := prometheus.NewRegistry()
	metrics := ports.NewMetrics(reg)
	var rawTime, ingTime time.Duration
	samples, published := 0, 0
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		base := time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(6+2*r) * time.Hour)
		// 750 batches × 80 points = 60,000 samples: three full blocks, so
		// ingest never waits for its flush timer.
		sbs := benchBatches(base, 3, 250, 4)
		batches := make([]domain.Batch, len(sbs))
		for i, sb := range sbs {
			bt, err := domain.NewBatch(sb)
			if err != nil {
				b.Fatal(err)
			}
			batches[i] = bt
			samples += len(bt.Points)
		}

		// Raw clickhouse-go.
		t0 := time.Now()
		var bt driver.Batch
		rows := 0
		for _, x := range batches {
			for i := range x.Points {
				if bt == nil {
					if bt, err = conn.PrepareBatch(ctx, "INSERT INTO elb_samples (ts, metric, lb, listener, az, pool, node, dims, topkey, agent, batch, cnt, total, vmin, vmax, vals)"); err != nil {
						b.Fatal(err)
					}
				}
				p := &x.Points[i]
				vals := p.Values
				if vals == nil {
					vals = []float64{}
				}
				if err := bt.Append(x.Start, p.Metric, p.LoadBalancer, p.Listener, p.AvailabilityZone, p.Pool, p.Node, p.Dims(), p.TopKey, x.Agent, x.ID, p.Count, p.Sum, p.Min, p.Max, vals); err != nil {
					b.Fatal(err)
				}
				if rows++; rows%flush == 0 {
					if err := bt.Send(); err != nil {
						b.Fatal(err)
					}
					bt = nil
				}
			}
		}
		if bt != nil {
			if err := bt.Send(); err != nil {
				b.Fatal(err)
			}
		}
		rawTime += time.Since(t0)
		b.StopTimer()
		if err := rawStore.Optimize(ctx); err != nil {
			b.Fatal(err)
		}
		// Publish the round (not timed) while ingest is stopped.
		for _, sb := range sbs {
			data, _ := json.Marshal(sb)
			if _, err := bus.JS.PublishAsync(events.AgentSubject(sb.NodeID, events.ReportSamples), data); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-bus.JS.PublishAsyncComplete():
		case <-time.After(2 * time.Minute):
			b.Fatal("publishing timed out")
		}
		published += len(sbs)
		b.StartTimer()

		// Ingest path.
		t1 := time.Now()
		ictx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = ports.NewIngest(bus.JS, counting, ports.IngestConfig{MaxSamples: flush, Metrics: metrics}).Run(ictx)
		}()
		select {
		case <-counting.reached(published):
		case <-time.After(5 * time.Minute):
			b.Fatal("ingest did not finish in 5 minutes")
		}
		ingTime += time.Since(t1)
		cancel()
		<-done
		b.StopTimer()
		if err := store.Optimize(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	q, _ := domain.NewStatisticsQuery(events.MetricRequestCount, nil, time.Now().Add(-24*time.Hour), time.Now(), 3600, []string{"SampleCount"}, nil)
	dps, err := store.Statistics(ctx, q)
	if err != nil {
		b.Fatal(err)
	}
	var n float64
	for _, d := range dps {
		n += d.SampleCount
	}
	if want := float64(published * 4 * 3); n != want {
		b.Fatalf("ingest stored SampleCount %v, want %v", n, want)
	}
	rawRate := float64(samples) / rawTime.Seconds()
	ingRate := float64(samples) / ingTime.Seconds()
	b.ReportMetric(rawRate, "raw-samples/s")
	b.ReportMetric(ingRate, "ingest-samples/s")
	b.ReportMetric(ingRate/rawRate, "ingest/raw")
	if mfs, err := reg.Gather(); err == nil {
		for _, mf := range mfs {
			if mf.GetName() == "elb_stats_insert_seconds" {
				h := mf.GetMetric()[0].GetHistogram()
				b.Logf("ingest: %d inserts took %.2f s of %.2f s", h.GetSampleCount(), h.GetSampleSum(), ingTime.Seconds())
			}
		}
	}
	b.Logf("samples %d in %d rounds: raw clickhouse-go %.0f samples/s, ingest path %.0f samples/s, ratio %.2f", samples, rounds, rawRate, ingRate, ingRate/rawRate)
}

// BenchmarkQuery24h measures GetMetricStatistics latency through the query
// endpoint (NATS request/reply → app → ClickHouse) for 24 h at a 60 s
// period over 10 s samples of one load balancer. Run with -benchtime=1x.
func BenchmarkQuery24h(b *testing.B) {
	srv := chtest.Start(b)
	ctx := context.Background()
	store := open(b, srv.DSN)
	end := time.Now().UTC().Truncate(time.Hour)
	base := end.Add(-24 * time.Hour)
	// 1 node × 8640 intervals × 40 points = 345,600 samples of one LB.
	sbs := benchBatches(base, 1, 8640, 2)
	var chunk []domain.Batch
	for i, sb := range sbs {
		bt, err := domain.NewBatch(sb)
		if err != nil {
			b.Fatal(err)
		}
		chunk = append(chunk, bt)
		if len(chunk) == 500 || i == len(sbs)-1 {
			if err := store.Insert(ctx, chunk); err != nil {
				b.Fatal(err)
			}
			chunk = nil
		}
	}
	bus := testkit.NATS(b)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = ports.NewResponder(bus.Conn, app.NewQueries(store), ports.ResponderConfig{}).Run(rctx) }()
	c := statsapi.NewClient(bus.Conn)
	time.Sleep(100 * time.Millisecond)
	run := func(name string, q statsapi.StatisticsQuery) {
		const n = 200
		lat := make([]time.Duration, 0, n)
		for i := 0; i < n; i++ {
			t0 := time.Now()
			res, err := c.GetMetricStatistics(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			if len(res.Datapoints) != 1440 {
				b.Fatalf("%s: %d datapoints, want 1440", name, len(res.Datapoints))
			}
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		p50, p99 := lat[n/2], lat[n*99/100]
		b.ReportMetric(float64(p50.Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, name+"-p99-ms")
		b.Logf("%s: p50 %v p99 %v over %d queries", name, p50, p99, n)
	}
	b.ResetTimer()
	all := []string{"Average", "Sum", "Minimum", "Maximum", "SampleCount"}
	lb := []statsapi.Dimension{{Name: "LoadBalancer", Value: "lb-bench"}}
	run("rollup", statsapi.StatisticsQuery{MetricName: "RequestCount", Dimensions: lb, StartTime: base, EndTime: end, Period: 60, Statistics: all})
	run("raw", statsapi.StatisticsQuery{MetricName: "RequestCount", Dimensions: lb, StartTime: base.Add(10 * time.Second), EndTime: end, Period: 60, Statistics: all})
	run("percentiles", statsapi.StatisticsQuery{MetricName: "Latency", Dimensions: lb, StartTime: base, EndTime: end, Period: 60, Statistics: all, ExtendedStatistics: []string{"p50", "p90", "p99"}})
	_ = clickhouse.TableRaw
}

// countingInserter signals when a number of batches has been stored, so the
// benchmark needs no polling.
type countingInserter struct {
	store *clickhouse.Store
	mu    sync.Mutex
	n     int
	want  int
	ch    chan struct{}
}

func (c *countingInserter) Insert(ctx context.Context, bs []domain.Batch) error {
	if err := c.store.Insert(ctx, bs); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += len(bs)
	if c.ch != nil && c.n >= c.want {
		close(c.ch)
		c.ch = nil
	}
	return nil
}

func (c *countingInserter) reached(n int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{})
	if c.n >= n {
		close(ch)
		return ch
	}
	c.ch, c.want = ch, n
	return ch
}
