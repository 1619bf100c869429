package ports_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/stats/adapters/memstore"
	"github.com/elbcloud/elb/services/stats/app"
	"github.com/elbcloud/elb/services/stats/domain"
	"github.com/elbcloud/elb/services/stats/ports"
	"github.com/elbcloud/elb/services/stats/statsapi"
)

func memStore(t *testing.T) *memstore.Store {
	t.Helper()
	s, err := memstore.Open(t.TempDir(), memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func startResponder(t *testing.T, bus *testkit.Bus, store app.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	r := ports.NewResponder(bus.Conn, app.NewQueries(store), ports.ResponderConfig{})
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("responder: %v", err)
		}
	})
	// Wait until the subscriptions are in place.
	c := statsapi.NewClient(bus.Conn)
	testkit.Eventually(t, 5*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := c.LBStats(ctx, "probe")
		return err == nil
	}, "responder answers")
}

// sampleBatch is what an agent would publish: one point per metric given.
func sampleBatch(node string, end time.Time, lb string, metrics ...string) events.SampleBatch {
	sb := events.SampleBatch{NodeID: node, Role: events.RoleTengine, Time: end, Interval: 10 * time.Second}
	for i, m := range metrics {
		sb.Points = append(sb.Points, events.SamplePoint{
			Metric: m, Dimensions: map[string]string{"LoadBalancer": lb, "Listener": "l1", "AvailabilityZone": "az1"},
			Count: 1, Sum: float64(i + 1), Min: float64(i + 1), Max: float64(i + 1), Values: []float64{float64(i + 1)},
		})
	}
	return sb
}

func publish(t *testing.T, js jetstream.JetStream, subject string, v any) {
	t.Helper()
	data, ok := v.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, subject, data); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

func TestQueriesOverTheBusReturnDatapointsAndTypedErrors(t *testing.T) {
	bus := testkit.NATS(t)
	store := memStore(t)
	end := time.Now().UTC().Truncate(time.Minute)
	b, err := domain.NewBatch(sampleBatch("node-1", end, "lb-1", events.MetricRequestCount, events.MetricLatency))
	if err != nil {
		t.Fatal(err)
	}
	top := sampleBatch("node-1", end, "lb-1")
	for i, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		top.Points = append(top.Points, events.SamplePoint{Metric: events.MetricClientIPRequestCount,
			Dimensions: map[string]string{"LoadBalancer": "lb-1", "ClientIP": ip}, Count: 1, Sum: float64(10 * (i + 1)), Min: 1, Max: 1})
	}
	top.NodeID = "node-2"
	tb, err := domain.NewBatch(top)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Insert(context.Background(), []domain.Batch{b, tb}); err != nil {
		t.Fatal(err)
	}
	startResponder(t, bus, store)
	c := statsapi.NewClient(bus.Conn)
	ctx := testkit.Context(t, 30*time.Second)

	res, err := c.GetMetricStatistics(ctx, statsapi.StatisticsQuery{
		MetricName: "Latency", Dimensions: []statsapi.Dimension{{Name: "LoadBalancer", Value: "lb-1"}},
		StartTime: end.Add(-time.Hour), EndTime: end, Period: 60,
		Statistics: []string{"Average", "Sum", "Minimum", "Maximum", "SampleCount"}, ExtendedStatistics: []string{"p50", "p99.9"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Datapoints) != 1 || res.Label != "Latency" {
		t.Fatalf("result %+v", res)
	}
	dp := res.Datapoints[0]
	if !dp.Timestamp.Equal(end.Add(-time.Minute)) || *dp.Sum != 2 || *dp.Average != 2 || *dp.SampleCount != 1 || *dp.Minimum != 2 || *dp.Maximum != 2 ||
		dp.ExtendedStatistics["p50"] != 2 || dp.ExtendedStatistics["p99.9"] != 2 || dp.Unit != "Seconds" {
		t.Fatalf("datapoint %+v", dp)
	}

	list, err := c.ListMetrics(ctx, statsapi.ListMetricsQuery{Dimensions: []statsapi.DimensionFilter{{Name: "LoadBalancer", Value: "lb-1"}}})
	if err != nil || len(list.Metrics) != 3 || list.Metrics[1].MetricName != "Latency" || len(list.Metrics[1].Dimensions) != 3 {
		t.Fatalf("list %+v %v", list, err)
	}

	tops, err := c.Top(ctx, "lb-1", statsapi.TopClientIP, end.Add(-time.Hour), end, 2)
	if err != nil || len(tops.Windows) != 1 || len(tops.Windows[0].Entries) != 2 || tops.Windows[0].Entries[0] != (statsapi.TopEntry{Key: "10.0.0.3", Requests: 30}) ||
		!tops.Windows[0].End.Equal(tops.Windows[0].Start.Add(5*time.Minute)) {
		t.Fatalf("top %+v %v", tops, err)
	}
	if st, err := c.LBStats(ctx, "lb-1"); err != nil || st != (statsapi.LBStats{}) {
		t.Fatalf("lbstats of an LB without byte counters: %+v %v", st, err)
	}

	bad := []struct {
		name string
		q    statsapi.StatisticsQuery
		msg  string
	}{
		{"unknown metric", statsapi.StatisticsQuery{MetricName: "Bogus", StartTime: end.Add(-time.Hour), EndTime: end, Period: 60, Statistics: []string{"Sum"}}, "unknown metric"},
		{"period not a multiple of 10 s", statsapi.StatisticsQuery{MetricName: "Latency", StartTime: end.Add(-time.Hour), EndTime: end, Period: 15, Statistics: []string{"Sum"}}, "multiple of 10"},
		{"zero period", statsapi.StatisticsQuery{MetricName: "Latency", StartTime: end.Add(-time.Hour), EndTime: end, Statistics: []string{"Sum"}}, "invalid period"},
		{"end before start", statsapi.StatisticsQuery{MetricName: "Latency", StartTime: end, EndTime: end.Add(-time.Hour), Period: 60, Statistics: []string{"Sum"}}, "must be after"},
		{"too many datapoints", statsapi.StatisticsQuery{MetricName: "Latency", StartTime: end.Add(-24 * time.Hour), EndTime: end, Period: 10, Statistics: []string{"Sum"}}, "at most 1440"},
		{"range over 15 days", statsapi.StatisticsQuery{MetricName: "Latency", StartTime: end.Add(-16 * 24 * time.Hour), EndTime: end, Period: 86400, Statistics: []string{"Sum"}}, "range too large"},
		{"unknown dimension", statsapi.StatisticsQuery{MetricName: "Latency", Dimensions: []statsapi.Dimension{{Name: "Tenant", Value: "x"}}, StartTime: end.Add(-time.Hour), EndTime: end, Period: 60, Statistics: []string{"Sum"}}, "invalid dimension"},
		{"unknown statistic", statsapi.StatisticsQuery{MetricName: "Latency", StartTime: end.Add(-time.Hour), EndTime: end, Period: 60, Statistics: []string{"Median"}}, "invalid statistic"},
		{"bad percentile", statsapi.StatisticsQuery{MetricName: "Latency", StartTime: end.Add(-time.Hour), EndTime: end, Period: 60, ExtendedStatistics: []string{"p101"}}, "invalid statistic"},
		{"no statistic", statsapi.StatisticsQuery{MetricName: "Latency", StartTime: end.Add(-time.Hour), EndTime: end, Period: 60}, "at least one"},
	}
	for _, c2 := range bad {
		t.Run(c2.name+" is an invalid query", func(t *testing.T) {
			_, err := c.GetMetricStatistics(ctx, c2.q)
			if !errors.Is(err, statsapi.ErrInvalidQuery) || !strings.Contains(err.Error(), c2.msg) {
				t.Fatalf("got %v, want ErrInvalidQuery mentioning %q", err, c2.msg)
			}
			if strings.Count(err.Error(), "invalid query") != 1 {
				t.Fatalf("message repeats the prefix: %v", err)
			}
		})
	}
	if _, err := c.Top(ctx, "lb-1", "referer", end.Add(-time.Hour), end, 10); !errors.Is(err, statsapi.ErrInvalidQuery) {
		t.Fatalf("bad top kind: %v", err)
	}
	if _, err := c.LBStats(ctx, ""); !errors.Is(err, statsapi.ErrInvalidQuery) {
		t.Fatalf("empty lb: %v", err)
	}
	// A malformed body is an invalid query too.
	msg, err := bus.Conn.RequestWithContext(ctx, statsapi.SubjectStatistics, []byte(`{"MetricName": 7}`))
	if err != nil {
		t.Fatal(err)
	}
	var rep statsapi.Reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil || rep.Error == nil || rep.Error.Code != statsapi.CodeInvalidQuery {
		t.Fatalf("malformed body: %s", msg.Data)
	}
}

func TestClientWithoutServiceIsUnavailable(t *testing.T) {
	bus := testkit.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := statsapi.NewClient(bus.Conn).LBStats(ctx, "lb-1")
	if !errors.Is(err, statsapi.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}

func runIngest(t *testing.T, js jetstream.JetStream, store ports.Inserter, cfg ports.IngestConfig) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ports.NewIngest(js, store, cfg).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingest: %v", err)
		}
	})
}

// sampleCount sums SampleCount of metric over all datapoints.
func sampleCount(t *testing.T, store app.Store, metric string, from, to time.Time) float64 {
	t.Helper()
	q, err := domain.NewStatisticsQuery(metric, nil, from, to, 3600, []string{"SampleCount"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dps, err := store.Statistics(context.Background(), q)
	if err != nil {
		return -1
	}
	var n float64
	for _, d := range dps {
		n += d.SampleCount
	}
	return n
}

func TestIngestStoresEveryBatchOnceAndParksBadOnes(t *testing.T) {
	bus := testkit.NATS(t)
	store := memStore(t)
	runIngest(t, bus.JS, store, ports.IngestConfig{MaxSamples: 50, FlushInterval: 50 * time.Millisecond})
	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	const n = 120
	for i := 0; i < n; i++ {
		node := fmt.Sprintf("node-%d", i%3)
		sb := sampleBatch(node, base.Add(time.Duration(i/3+1)*10*time.Second), "lb-1", events.MetricRequestCount, events.MetricLatency)
		publish(t, bus.JS, events.AgentSubject(node, events.ReportSamples), sb)
		if i%10 == 0 { // an agent retrying a publish: same batch twice in the stream
			publish(t, bus.JS, events.AgentSubject(node, events.ReportSamples), sb)
		}
	}
	// Bad messages: not JSON, unknown metric, node id not matching the subject.
	publish(t, bus.JS, events.AgentSubject("node-0", events.ReportSamples), []byte("{not json"))
	publish(t, bus.JS, events.AgentSubject("node-0", events.ReportSamples), sampleBatch("node-0", base, "lb-1", "Bogus"))
	publish(t, bus.JS, events.AgentSubject("node-0", events.ReportSamples), sampleBatch("node-9", base, "lb-1", events.MetricRequestCount))

	testkit.Eventually(t, 20*time.Second, func() bool {
		return sampleCount(t, store, events.MetricRequestCount, base.Add(-time.Hour), base.Add(time.Hour)) == n
	}, "all %d batches stored", n)
	dlq, err := bus.JS.Stream(context.Background(), events.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		info, err := dlq.Info(context.Background())
		return err == nil && info.State.Msgs == 3
	}, "3 bad batches parked")
	// Ingest keeps going after bad messages, and nothing is stored twice.
	publish(t, bus.JS, events.AgentSubject("node-0", events.ReportSamples), sampleBatch("node-0", base.Add(time.Hour), "lb-1", events.MetricRequestCount))
	testkit.Eventually(t, 10*time.Second, func() bool {
		return sampleCount(t, store, events.MetricRequestCount, base.Add(-time.Hour), base.Add(2*time.Hour)) == n+1
	}, "batch after the bad ones stored")
	if got := sampleCount(t, store, events.MetricLatency, base.Add(-time.Hour), base.Add(2*time.Hour)); got != n {
		t.Fatalf("latency samples %v, want %d", got, n)
	}
}

func TestIngestAcksOnlyAfterTheInsertCommitted(t *testing.T) {
	bus := testkit.NATS(t)
	inner := memStore(t)
	fs := &flakyStore{Store: inner}
	fs.setDown(true)
	runIngest(t, bus.JS, fs, ports.IngestConfig{FlushInterval: 20 * time.Millisecond, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	base := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	for i := 0; i < 20; i++ {
		publish(t, bus.JS, events.AgentSubject("node-1", events.ReportSamples), sampleBatch("node-1", base.Add(time.Duration(i+1)*10*time.Second), "lb-1", events.MetricRequestCount))
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return fs.failures() >= 3 }, "inserts attempted while the store is down")
	cons, err := bus.JS.Consumer(context.Background(), events.SampleStream, "stats-ingest")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 0 {
		t.Fatalf("messages acked while the store was down: ack floor %d", info.AckFloor.Stream)
	}
	fs.setDown(false)
	testkit.Eventually(t, 10*time.Second, func() bool {
		return sampleCount(t, inner, events.MetricRequestCount, base.Add(-time.Hour), base.Add(time.Hour)) == 20
	}, "stored after the store came back")
	testkit.Eventually(t, 10*time.Second, func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	}, "everything acked")
}

func TestIngestKeepsEveryPartOfABatchSplitByTheAgent(t *testing.T) {
	bus := testkit.NATS(t)
	store := memStore(t)
	runIngest(t, bus.JS, store, ports.IngestConfig{FlushInterval: 20 * time.Millisecond})
	end := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	// agents/runtime splits one interval's points into batches of at most
	// 400 with the same node id and time.
	whole := sampleBatch("node-1", end, "lb-1", events.MetricRequestCount, events.MetricRequestCount, events.MetricRequestCount)
	for i := range whole.Points {
		whole.Points[i].Dimensions = map[string]string{"LoadBalancer": "lb-1", "Listener": fmt.Sprintf("l%d", i)}
	}
	first, second := whole, whole
	first.Points, second.Points = whole.Points[:2], whole.Points[2:]
	subject := events.AgentSubject("node-1", events.ReportSamples)
	publish(t, bus.JS, subject, first)
	publish(t, bus.JS, subject, second)
	publish(t, bus.JS, subject, second) // and one part re-published
	testkit.Eventually(t, 10*time.Second, func() bool {
		return sampleCount(t, store, events.MetricRequestCount, end.Add(-time.Hour), end.Add(time.Hour)) == 3
	}, "all three points of the split batch stored once")
	cons, err := bus.JS.Consumer(context.Background(), events.SampleStream, "stats-ingest")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.AckFloor.Stream == 3
	}, "all three messages acked")
	if got := sampleCount(t, store, events.MetricRequestCount, end.Add(-time.Hour), end.Add(time.Hour)); got != 3 {
		t.Fatalf("SampleCount %v after all acks, want 3", got)
	}
}
