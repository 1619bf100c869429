package app

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/alarm/domain"
)

type memStore struct {
	mu           sync.Mutex
	aggs         map[string][]events.Event
	beforeAppend func()
}

func (m *memStore) Load(_ context.Context, aggType, aggID string) ([]events.Event, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs := m.aggs[aggType+"/"+aggID]
	return append([]events.Event(nil), evs...), uint64(len(evs)), nil
}

func (m *memStore) Append(_ context.Context, aggType, aggID string, expected uint64, _ string, envs ...events.Envelope) (eventstore.AppendResult, error) {
	if f := m.beforeAppend; f != nil {
		m.beforeAppend = nil
		f()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := aggType + "/" + aggID
	if uint64(len(m.aggs[key])) != expected {
		return eventstore.AppendResult{}, fmt.Errorf("append: %w", eventstore.ErrConcurrency)
	}
	for _, env := range envs {
		env.AggregateType, env.AggregateID = aggType, aggID
		env.AggregateVersion = uint64(len(m.aggs[key])) + 1
		e, err := events.DecodeEnvelope(env)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		m.aggs[key] = append(m.aggs[key], e)
	}
	return eventstore.AppendResult{Version: uint64(len(m.aggs[key]))}, nil
}

func (m *memStore) types(id string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, e := range m.aggs[events.AggAlarm+"/"+id] {
		out = append(out, e.Type)
	}
	return out
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type recorder struct {
	mu  sync.Mutex
	got []domain.Notification
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Notify(_ context.Context, n domain.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, n)
	return nil
}

func newService(t *testing.T) (*Service, *memStore, *clock) {
	t.Helper()
	st := &memStore{aggs: map[string][]events.Event{}}
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	svc, err := New(st, Options{Rules: domain.DefaultRules(), Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return svc, st, c
}

func cpuBatch(node string, v float64) events.SampleBatch {
	return events.SampleBatch{NodeID: node, Interval: 10 * time.Second, Points: []events.SamplePoint{
		{Metric: events.MetricNodeCPUUtilization, Dimensions: map[string]string{events.DimNode: node}, Count: 1, Sum: v}}}
}

func TestRaiseThatLosesARaceToAnotherEvaluatorAppendsNothing(t *testing.T) {
	svc, st, _ := newService(t)
	ctx := context.Background()
	id := domain.AlarmID("node-cpu-high", "Node=n1")
	_ = svc.ObserveSamples(ctx, "n1", cpuBatch("n1", 95))
	_ = svc.ObserveSamples(ctx, "n1", cpuBatch("n1", 95))
	st.beforeAppend = func() {
		env := events.MustNew(events.AggAlarm, id, &events.AlarmRaised{Rule: "node-cpu-high", Resource: "Node=n1"}, events.Meta{})
		if _, err := st.Append(ctx, events.AggAlarm, id, 0, "", env); err != nil {
			t.Error(err)
		}
	}
	_ = svc.ObserveSamples(ctx, "n1", cpuBatch("n1", 95))
	if got := st.types(id); len(got) != 1 {
		t.Fatalf("alarm events %v, want the other evaluator's raise only", got)
	}
	if r := svc.Raised(); len(r) != 1 || r[0] != id {
		t.Fatalf("raised %v, want %s known as raised", r, id)
	}
	_ = svc.ObserveSamples(ctx, "n1", cpuBatch("n1", 10))
	if got := st.types(id); len(got) != 2 || got[1] != events.TypeAlarmResolved {
		t.Fatalf("alarm events %v, want raise then resolve", got)
	}
}

func TestAgentAliveOnAFakeClock(t *testing.T) {
	svc, st, c := newService(t)
	ctx := context.Background()
	id := domain.AlarmID(domain.RuleAgentAlive, "Node=n1")
	if err := svc.Heartbeat("n1", 0); err != nil {
		t.Fatal(err)
	}
	c.Add(4 * time.Second)
	svc.Tick(ctx)
	if got := st.types(id); len(got) != 0 {
		t.Fatalf("alarm after 4 s: %v", got)
	}
	c.Add(2 * time.Second)
	svc.Tick(ctx)
	svc.Tick(ctx)
	if got := st.types(id); len(got) != 1 || got[0] != events.TypeAlarmRaised {
		t.Fatalf("after 6 s: %v, want one raise", got)
	}
	_ = svc.Heartbeat("n1", 0)
	svc.Tick(ctx)
	if got := st.types(id); len(got) != 2 || got[1] != events.TypeAlarmResolved {
		t.Fatalf("after a new heartbeat: %v, want resolved", got)
	}
	// A heartbeat replayed at start-up counts from when it was sent.
	_ = svc.Heartbeat("n2", 10*time.Second)
	svc.Tick(ctx)
	if got := st.types(domain.AlarmID(domain.RuleAgentAlive, "Node=n2")); len(got) != 1 {
		t.Fatalf("stale heartbeat not alarmed: %v", got)
	}
}

func TestNotifyEventSkipsSilencedAlarmsAndFillsResolvedSeverity(t *testing.T) {
	st := &memStore{aggs: map[string][]events.Event{}}
	rec := &recorder{}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	svc, err := New(st, Options{Rules: domain.DefaultRules(), Notifiers: []Notifier{rec}, Clock: func() time.Time { return now },
		Silences: []domain.Silence{{Resource: "Node=quiet", Until: now.Add(time.Minute)}}})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(id string, d any) events.Event {
		return events.Event{Envelope: events.Envelope{ID: "e-" + id, AggregateID: id, OccurredAt: now}, Data: d}
	}
	ctx := context.Background()
	_ = svc.NotifyEvent(ctx, ev("a1", &events.AlarmRaised{Rule: "node-cpu-high", Severity: "warning", Resource: "Node=quiet"}))
	_ = svc.NotifyEvent(ctx, ev("a2", &events.AlarmResolved{Rule: "node-cpu-high", Resource: "Node=loud"}))
	if len(rec.got) != 1 || rec.got[0].AlarmID != "a2" || rec.got[0].Status != domain.StatusResolved || rec.got[0].Severity != "warning" {
		t.Fatalf("notifications %+v", rec.got)
	}
}

func TestNewRejectsInvalidOrDuplicateRules(t *testing.T) {
	st := &memStore{aggs: map[string][]events.Event{}}
	r := domain.DefaultRules()[0]
	if _, err := New(st, Options{Rules: []domain.Rule{r, r}}); err == nil {
		t.Error("duplicate rule accepted")
	}
	r.Compare = "=="
	if _, err := New(st, Options{Rules: []domain.Rule{r}}); err == nil {
		t.Error("invalid rule accepted")
	}
}

// BenchmarkObserveSamples measures one tengine-like batch (node metrics plus
// per-listener AWS metrics, 30 points) through the built-in rules, with no
// transition (the steady state).
func BenchmarkObserveSamples(b *testing.B) {
	st := &memStore{aggs: map[string][]events.Event{}}
	svc, err := New(st, Options{Rules: domain.DefaultRules()})
	if err != nil {
		b.Fatal(err)
	}
	node := map[string]string{events.DimNode: "n1"}
	batch := events.SampleBatch{NodeID: "n1", Interval: 10 * time.Second}
	for _, m := range []string{events.MetricNodeCPUUtilization, events.MetricNodeMemoryUtilization, events.MetricNodeNetworkIn,
		events.MetricNodeNetworkOut, events.MetricNodeTCPCloseWait, events.MetricNodeTCPFinWait2, events.MetricNodeTCPSynRecv,
		events.MetricNodeTCPEstablished, events.MetricNodeTCPTimeWait, events.MetricActiveConnectionCount} {
		batch.Points = append(batch.Points, events.SamplePoint{Metric: m, Dimensions: node, Count: 1, Sum: 10, Max: 10, Min: 10})
	}
	for l := range 2 {
		dims := map[string]string{events.DimLoadBalancer: "lb1", events.DimListener: fmt.Sprintf("l%d", l)}
		for _, m := range []string{events.MetricRequestCount, events.MetricLatency, events.MetricHealthyHostCount, events.MetricUnHealthyHostCount,
			events.MetricHTTPCodeELB4XX, events.MetricHTTPCodeELB5XX, events.MetricHTTPCodeBackend2XX, events.MetricHTTPCodeBackend5XX,
			events.MetricActiveConnectionCount, events.MetricSurgeQueueLength} {
			batch.Points = append(batch.Points, events.SamplePoint{Metric: m, Dimensions: dims, Count: 1, Sum: 3, Max: 3, Min: 3})
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = svc.ObserveSamples(ctx, "n1", batch)
	}
	b.ReportMetric(float64(len(batch.Points)), "points/batch")
}
