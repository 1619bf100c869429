package app

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/scaler/domain"
)

// memStore is an in-memory Store with the event store's concurrency
// contract; beforeAppend lets a test slip a concurrent append in.
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

func (m *memStore) add(t *testing.T, lb string, at time.Time, data any) {
	t.Helper()
	_, v, _ := m.Load(context.Background(), events.AggLoadBalancer, lb)
	env := events.MustNew(events.AggLoadBalancer, lb, data, events.Meta{})
	env.OccurredAt = at
	if _, err := m.Append(context.Background(), events.AggLoadBalancer, lb, v, "", env); err != nil {
		t.Fatal(err)
	}
}

func (m *memStore) scaleEvents(lb string) []any {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []any
	for _, e := range m.aggs[events.AggLoadBalancer+"/"+lb] {
		switch e.Data.(type) {
		case *events.ScaleOutDecided, *events.ScaleInDecided:
			out = append(out, e.Data)
		}
	}
	return out
}

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// busyService returns a scaler whose read model has lb1 active on five busy
// nodes.
func busyService(t *testing.T) (*Service, *memStore) {
	t.Helper()
	st := &memStore{aggs: map[string][]events.Event{}}
	nodes := []string{"a", "b", "c", "d", "e"}
	st.add(t, "lb1", t0.Add(-time.Hour), &events.ELBRequested{Spec: events.LoadBalancerSpec{L7Nodes: 5}})
	st.add(t, "lb1", t0.Add(-time.Hour), &events.ELBActive{Nodes: nodes})
	svc, err := New(st, domain.DefaultPolicy(), func() time.Time { return t0 }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs, _, _ := st.Load(context.Background(), events.AggLoadBalancer, "lb1")
	for _, e := range evs {
		if err := svc.ApplyEvent(e); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		for i := range 5 {
			b := events.SampleBatch{NodeID: n, Time: t0.Add(-time.Duration(i) * time.Minute / 2), Points: []events.SamplePoint{
				{Metric: events.MetricNodeCPUUtilization, Dimensions: map[string]string{events.DimNode: n}, Count: 1, Sum: 95}}}
			if err := svc.Observe(n, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	return svc, st
}

func TestTickAppendsOneScaleOutForABusyLoadBalancer(t *testing.T) {
	svc, st := busyService(t)
	n, err := svc.Tick(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Tick = %d, %v; want 1 decision", n, err)
	}
	got := st.scaleEvents("lb1")
	if len(got) != 1 {
		t.Fatalf("events %v", got)
	}
	if d := got[0].(*events.ScaleOutDecided); d.From != 5 || d.To != 6 {
		t.Fatalf("decision %+v, want 5→6", d)
	}
}

func TestTickSeesADecisionAppendedConcurrentlyAndRespectsItsCooldown(t *testing.T) {
	svc, st := busyService(t)
	st.beforeAppend = func() { st.add(t, "lb1", t0, &events.ScaleOutDecided{From: 5, To: 6, Reason: "another scaler"}) }
	n, err := svc.Tick(context.Background())
	if err != nil || n != 0 {
		t.Fatalf("Tick = %d, %v; want no decision of its own", n, err)
	}
	if got := st.scaleEvents("lb1"); len(got) != 1 {
		t.Fatalf("%d scale events, want only the concurrent one", len(got))
	}
}

func TestTickDecidesAgainAfterAConflictWithAnUnrelatedChange(t *testing.T) {
	svc, st := busyService(t)
	st.beforeAppend = func() {
		st.add(t, "lb1", t0, &events.MemberAdded{MemberID: "m1", Spec: events.MemberSpec{PoolID: "p1", Address: "127.0.0.1", ProtocolPort: 80, Weight: 1}})
	}
	n, err := svc.Tick(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Tick = %d, %v; want 1 decision after the retry", n, err)
	}
	if got := st.scaleEvents("lb1"); len(got) != 1 || got[0].(*events.ScaleOutDecided).To != 6 {
		t.Fatalf("scale events %v", got)
	}
}

func TestObserveRejectsStaleAndFutureSamples(t *testing.T) {
	svc, _ := busyService(t)
	for _, at := range []time.Time{{}, t0.Add(-time.Hour), t0.Add(time.Hour)} {
		if err := svc.Observe("a", events.SampleBatch{Time: at}); err == nil {
			t.Errorf("sample at %v accepted", at)
		}
	}
	if err := svc.Observe("a.b", events.SampleBatch{Time: t0}); err == nil {
		t.Error("invalid node id accepted")
	}
}
