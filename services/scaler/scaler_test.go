package scaler

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/prometheus/client_golang/prometheus"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type harness struct {
	t     *testing.T
	ctx   context.Context
	bus   *testkit.Bus
	store *eventstore.Store
	clock *fakeClock
	reg   *prometheus.Registry
	ticks atomic.Int64
}

func start(t *testing.T, t0 time.Time) *harness {
	t.Helper()
	h := &harness{t: t, ctx: testkit.Context(t, 60*time.Second), bus: testkit.NATS(t), clock: &fakeClock{t: t0},
		reg: prometheus.NewRegistry()}
	var err error
	h.store, err = eventstore.New(h.ctx, h.bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) run() {
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{JS: h.bus.JS, Clock: h.clock.Now, EvalInterval: 20 * time.Millisecond,
			Registerer: h.reg, tickHook: func(int) { h.ticks.Add(1) }})
	}()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
	// The first tick runs after the projection caught up.
	testkit.Eventually(h.t, 10*time.Second, func() bool { return h.ticks.Load() > 0 }, "scaler ticking")
}

func (h *harness) append(lb string, data any) {
	h.t.Helper()
	_, v, err := h.store.Load(h.ctx, events.AggLoadBalancer, lb)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.store.Append(h.ctx, events.AggLoadBalancer, lb, v, "", events.MustNew(events.AggLoadBalancer, lb, data, events.Meta{Actor: "test"})); err != nil {
		h.t.Fatal(err)
	}
}

func nodeIDs(lb string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-n%d", lb, i+1)
	}
	return out
}

// publishLoad publishes, for every node, one sample every 50 s over the last
// 250 s of the fake clock, and waits until the scaler has used them.
func (h *harness) publishLoad(nodes []string, cpu, conns float64) {
	h.t.Helper()
	before := h.counter("elb_scaler_samples_total", "used")
	h.publishOnly(nodes, cpu, conns)
	want := before + float64(6*len(nodes))
	testkit.Eventually(h.t, 10*time.Second, func() bool { return h.counter("elb_scaler_samples_total", "used") >= want },
		"scaler used %v samples", want)
}

// publishOnly publishes like publishLoad without waiting.
func (h *harness) publishOnly(nodes []string, cpu, conns float64) {
	h.t.Helper()
	now := h.clock.Now()
	for _, n := range nodes {
		for i := range 6 {
			b := events.SampleBatch{NodeID: n, Role: events.RoleTengine, Time: now.Add(-time.Duration(i) * 50 * time.Second),
				Interval: 10 * time.Second, Points: []events.SamplePoint{
					{Metric: events.MetricNodeCPUUtilization, Dimensions: map[string]string{events.DimNode: n}, Count: 1, Sum: cpu, Min: cpu, Max: cpu},
					{Metric: events.MetricActiveConnectionCount, Dimensions: map[string]string{events.DimNode: n}, Count: 1, Sum: conns, Min: conns, Max: conns},
				}}
			data, _ := json.Marshal(b)
			if _, err := h.bus.JS.Publish(h.ctx, events.AgentSubject(n, events.ReportSamples), data); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

func (h *harness) counter(name, label string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// decisions returns the scaling events of a load balancer.
func (h *harness) decisions(lb string) []events.Event {
	h.t.Helper()
	evs, _, err := h.store.Load(h.ctx, events.AggLoadBalancer, lb)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []events.Event
	for _, e := range evs {
		switch e.Data.(type) {
		case *events.ScaleOutDecided, *events.ScaleInDecided:
			out = append(out, e)
		}
	}
	return out
}

func (h *harness) waitDecisions(lb string, n int) []events.Event {
	h.t.Helper()
	var got []events.Event
	testkit.Eventually(h.t, 10*time.Second, func() bool { got = h.decisions(lb); return len(got) >= n }, "%d decision(s) for %s", n, lb)
	if len(got) != n {
		h.t.Fatalf("%d decisions, want %d: %v", len(got), n, got)
	}
	return got
}

// settle waits for a few evaluations after everything published so far.
func (h *harness) settle() {
	h.t.Helper()
	from := h.ticks.Load()
	testkit.Eventually(h.t, 10*time.Second, func() bool { return h.ticks.Load() >= from+3 }, "three more evaluations")
}

func TestScalerAddsTwentyPercentUnderLoadRespectsCooldownAndDrainsWhenIdle(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	h := start(t, t0)
	lb := "lb-load"
	h.append(lb, &events.ELBRequested{Spec: events.LoadBalancerSpec{Name: "web", L7Nodes: 5, MaxL7Nodes: 10}})
	h.append(lb, &events.ELBActive{Version: 1, Nodes: nodeIDs(lb, 5)})
	h.run()

	// Five busy nodes: +20% is one node.
	h.publishLoad(nodeIDs(lb, 5), 90, 100)
	got := h.waitDecisions(lb, 1)
	out, ok := got[0].Data.(*events.ScaleOutDecided)
	if !ok || out.From != 5 || out.To != 6 || !strings.Contains(out.Reason, "under load") {
		t.Fatalf("first decision = %T %+v, want scale-out 5→6", got[0].Data, got[0].Data)
	}
	if got[0].Actor != "scaler" || !got[0].OccurredAt.Equal(t0) {
		t.Errorf("decision actor %q at %s, want scaler at the scaler's clock", got[0].Actor, got[0].OccurredAt)
	}

	// The provisioner brings the sixth node up; load stays high, but the
	// cooldown holds for five minutes.
	h.append(lb, &events.ELBActive{Version: 2, Nodes: nodeIDs(lb, 6)})
	h.clock.Set(t0.Add(4 * time.Minute))
	h.publishLoad(nodeIDs(lb, 6), 90, 100)
	h.settle()
	if n := len(h.decisions(lb)); n != 1 {
		t.Fatalf("%d decisions within the cooldown, want 1", n)
	}

	// After the cooldown: six nodes +20% (1.2, rounded up) is eight.
	h.clock.Set(t0.Add(5*time.Minute + time.Second))
	h.publishLoad(nodeIDs(lb, 6), 90, 100)
	got = h.waitDecisions(lb, 2)
	if out, ok := got[1].Data.(*events.ScaleOutDecided); !ok || out.From != 6 || out.To != 8 {
		t.Fatalf("second decision = %T %+v, want scale-out 6→8", got[1].Data, got[1].Data)
	}

	// Eight nodes, then quiet for five minutes: one node is drained.
	h.append(lb, &events.ELBActive{Version: 3, Nodes: nodeIDs(lb, 8)})
	h.clock.Set(t0.Add(11 * time.Minute))
	h.publishLoad(nodeIDs(lb, 8), 3, 5)
	got = h.waitDecisions(lb, 3)
	in, ok := got[2].Data.(*events.ScaleInDecided)
	if !ok || in.From != 8 || in.To != 7 || len(in.Nodes) != 1 || !strings.HasPrefix(in.Nodes[0], lb+"-n") {
		t.Fatalf("third decision = %T %+v, want scale-in 8→7 draining one node", got[2].Data, got[2].Data)
	}

	// Still quiet but within the cooldown: nothing more.
	h.settle()
	if n := len(h.decisions(lb)); n != 3 {
		t.Fatalf("%d decisions within the scale-in cooldown, want 3", n)
	}

	// Pre-warm on request overrides the cooldown.
	if err := SetPolicy(h.ctx, h.bus.JS, events.ScalePolicySet{LoadBalancerID: lb, PreWarm: 9}, events.Meta{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	got = h.waitDecisions(lb, 4)
	if out, ok := got[3].Data.(*events.ScaleOutDecided); !ok || out.From != 7 || out.To != 9 || !strings.Contains(out.Reason, "pre-warm") {
		t.Fatalf("fourth decision = %T %+v, want pre-warm 7→9", got[3].Data, got[3].Data)
	}
}

func TestScalerRefillsItsWindowsFromTheSampleStreamOnStart(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	h := start(t, t0)
	lb := "lb-restart"
	h.append(lb, &events.ELBRequested{Spec: events.LoadBalancerSpec{Name: "web", L7Nodes: 2}})
	h.append(lb, &events.ELBActive{Version: 1, Nodes: nodeIDs(lb, 2)})
	// Samples sent while no scaler ran (e.g. during a restart) still count.
	h.publishOnly(nodeIDs(lb, 2), 95, 10)
	h.run()
	got := h.waitDecisions(lb, 1)
	if out, ok := got[0].Data.(*events.ScaleOutDecided); !ok || out.From != 2 || out.To != 3 {
		t.Fatalf("decision = %T %+v, want scale-out 2→3", got[0].Data, got[0].Data)
	}
}

func TestScalerIgnoresLoadBalancersThatAreNotActiveAndUnknownNodes(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	h := start(t, t0)
	h.append("lb-new", &events.ELBRequested{Spec: events.LoadBalancerSpec{Name: "new", L7Nodes: 2}})
	h.append("lb-new", &events.VMRequested{LoadBalancerID: "lb-new", NodeID: "lb-new-n1"})
	h.run()
	h.publishLoad([]string{"lb-new-n1"}, 99, 100)
	before := h.counter("elb_scaler_samples_total", "ignored")
	data, _ := json.Marshal(events.SampleBatch{NodeID: "stranger", Time: t0, Points: []events.SamplePoint{
		{Metric: events.MetricNodeCPUUtilization, Count: 1, Sum: 99}}})
	if _, err := h.bus.JS.Publish(h.ctx, events.AgentSubject("stranger", events.ReportSamples), data); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return h.counter("elb_scaler_samples_total", "ignored") > before }, "unknown node ignored")
	h.settle()
	if n := len(h.decisions("lb-new")); n != 0 {
		t.Fatalf("%d decisions for a load balancer still being created", n)
	}
}

func TestSetPolicyRejectsInvalidPolicies(t *testing.T) {
	h := start(t, time.Now())
	for _, p := range []events.ScalePolicySet{
		{LoadBalancerID: "", Min: 1},
		{LoadBalancerID: "lb", Min: 5, Max: 2},
		{LoadBalancerID: "lb", Min: -1},
		{LoadBalancerID: "lb", Max: 3, PreWarm: 4},
	} {
		if err := SetPolicy(h.ctx, h.bus.JS, p, events.Meta{}); err == nil {
			t.Errorf("policy %+v accepted", p)
		}
	}
}
