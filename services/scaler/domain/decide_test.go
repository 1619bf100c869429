package domain

import (
	"slices"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func nodes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "n" + string(rune('a'+i))
	}
	return out
}

func TestStepOutAddsTwentyPercentRoundedUpAtLeastOneNode(t *testing.T) {
	p := DefaultPolicy()
	p.Max = 100
	for _, c := range []struct{ from, to int }{
		{1, 2}, {2, 3}, {4, 5}, {5, 6}, {6, 8}, {10, 12}, {11, 14}, {50, 60}, {99, 100},
	} {
		if got := p.StepOut(c.from); got != c.to {
			t.Errorf("StepOut(%d) = %d, want %d", c.from, got, c.to)
		}
	}
	p.Max = 7
	if got := p.StepOut(6); got != 7 {
		t.Errorf("StepOut(6) with max 7 = %d, want 7", got)
	}
}

func TestDecide(t *testing.T) {
	busy := Load{Samples: 30, CPU: 85, HasCPU: true, Span: 5 * time.Minute}
	connsBusy := Load{Samples: 30, ConnsPerNode: 12000, HasConns: true, Span: 5 * time.Minute}
	idle := Load{Samples: 30, CPU: 5, HasCPU: true, ConnsPerNode: 10, HasConns: true,
		PerNodeConns: map[string]float64{"na": 12, "nb": 3, "nc": 15}, Span: 290 * time.Second}
	pol := DefaultPolicy()
	pol.Max = 10
	withMin := pol
	withMin.Min = 3
	prewarm := pol
	prewarm.PreWarm = 6
	loose := pol
	loose.ScaleInCPU = 40
	cases := []struct {
		name    string
		in      Input
		action  Action
		from    int
		to      int
		drained []string
	}{
		{name: "under cpu load five nodes become six",
			in: Input{Desired: 5, Serving: nodes(5), Policy: pol, Load: busy}, action: ScaleOut, from: 5, to: 6},
		{name: "under connection load six nodes become eight",
			in: Input{Desired: 6, Serving: nodes(6), Policy: pol, Load: connsBusy}, action: ScaleOut, from: 6, to: 8},
		{name: "under load one node becomes two",
			in: Input{Desired: 1, Serving: nodes(1), Policy: pol, Load: busy}, action: ScaleOut, from: 1, to: 2},
		{name: "under load the step stops at max",
			in: Input{Desired: 9, Serving: nodes(9), Policy: pol, Load: busy}, action: ScaleOut, from: 9, to: 10},
		{name: "under load at max nothing happens",
			in: Input{Desired: 10, Serving: nodes(10), Policy: pol, Load: busy}, action: None},
		{name: "under load within the cooldown nothing happens",
			in: Input{Desired: 5, Serving: nodes(5), Policy: pol, Load: busy, LastScale: t0.Add(-4 * time.Minute)}, action: None},
		{name: "under load after the cooldown scales again",
			in: Input{Desired: 5, Serving: nodes(5), Policy: pol, Load: busy, LastScale: t0.Add(-5 * time.Minute)}, action: ScaleOut, from: 5, to: 6},
		{name: "under load while capacity is still coming up nothing happens",
			in: Input{Desired: 6, Serving: nodes(5), Policy: pol, Load: busy}, action: None},
		{name: "too few samples nothing happens",
			in: Input{Desired: 2, Serving: nodes(2), Policy: pol, Load: Load{Samples: 2, CPU: 99, HasCPU: true}}, action: None},
		{name: "idle three nodes drain the least loaded one",
			in: Input{Desired: 3, Serving: nodes(3), Policy: pol, Load: idle}, action: ScaleIn, from: 3, to: 2, drained: []string{"nb"}},
		{name: "idle without connection figures drains the newest node",
			in:     Input{Desired: 3, Serving: nodes(3), Policy: pol, Load: Load{Samples: 30, CPU: 3, HasCPU: true, Span: 5 * time.Minute}},
			action: ScaleIn, from: 3, to: 2, drained: []string{"nc"}},
		{name: "idle never goes below min",
			in: Input{Desired: 3, Serving: nodes(3), Policy: withMin, Load: idle}, action: None},
		{name: "idle for too short a time nothing happens",
			in: Input{Desired: 3, Serving: nodes(3), Policy: pol, Load: Load{Samples: 30, CPU: 3, HasCPU: true, Span: time.Minute}}, action: None},
		{name: "idle two nodes whose load on one would be near scale-out keep both",
			in: Input{Desired: 2, Serving: nodes(2), Policy: loose, Load: Load{Samples: 30, CPU: 35, HasCPU: true, Span: 5 * time.Minute}}, action: None},
		{name: "idle within the cooldown nothing happens",
			in: Input{Desired: 3, Serving: nodes(3), Policy: pol, Load: idle, LastScale: t0.Add(-time.Minute)}, action: None},
		{name: "moderate load nothing happens",
			in: Input{Desired: 3, Serving: nodes(3), Policy: pol, Load: Load{Samples: 30, CPU: 50, HasCPU: true, Span: 5 * time.Minute}}, action: None},
		{name: "below min scales out at once even in the cooldown",
			in: Input{Desired: 1, Serving: nodes(1), Policy: withMin, LastScale: t0}, action: ScaleOut, from: 1, to: 3},
		{name: "pre-warm scales out at once to the pre-warm count",
			in: Input{Desired: 2, Serving: nodes(2), Policy: prewarm, LastScale: t0}, action: ScaleOut, from: 2, to: 6},
		{name: "pre-warm holds capacity while idle",
			in: Input{Desired: 6, Serving: nodes(6), Policy: prewarm, Load: idle}, action: None},
		{name: "above max while capacity is coming up names no node to drain",
			in: Input{Desired: 12, Serving: nodes(10), Policy: pol}, action: ScaleIn, from: 12, to: 11, drained: []string{}},
		{name: "above max scales in by one",
			in: Input{Desired: 12, Serving: nodes(12), Policy: pol, LastScale: t0}, action: ScaleIn, from: 12, to: 11, drained: []string{"nl"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.in.Now = t0
			d := Decide(c.in)
			if d.Action != c.action {
				t.Fatalf("action = %v (%s), want %v", d.Action, d.Reason, c.action)
			}
			if c.action == None {
				if d.Reason == "" {
					t.Error("no reason given for doing nothing")
				}
				return
			}
			if d.From != c.from || d.To != c.to {
				t.Errorf("from %d to %d, want %d to %d", d.From, d.To, c.from, c.to)
			}
			if c.drained != nil && !slices.Equal(d.Nodes, c.drained) && (len(c.drained) > 0 || len(d.Nodes) > 0) {
				t.Errorf("drained %v, want %v", d.Nodes, c.drained)
			}
		})
	}
}

func TestPolicyEffectiveTakesSpecThenScalePolicySet(t *testing.T) {
	p := DefaultPolicy()
	e := p.Effective(Override{SpecMin: 2, SpecMax: 8})
	if e.Min != 2 || e.Max != 8 || e.Cooldown != 5*time.Minute {
		t.Fatalf("spec bounds: %+v", e)
	}
	e = p.Effective(Override{SpecMin: 2, SpecMax: 8, Set: &events.ScalePolicySet{Min: 3, CooldownSeconds: 60, PreWarm: 5}})
	if e.Min != 3 || e.Max != 8 || e.Cooldown != time.Minute || e.PreWarm != 5 {
		t.Fatalf("policy set: %+v", e)
	}
	e = p.Effective(Override{SpecMin: 9, SpecMax: 4})
	if e.Max < e.Min {
		t.Fatalf("max below min not repaired: %+v", e)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := p
	bad.ScaleInCPU = 90
	if err := bad.Validate(); err == nil {
		t.Fatal("scale-in above scale-out threshold accepted")
	}
}

func TestWindowAggregatesOnlyTheWindowAndTheGivenNodes(t *testing.T) {
	w := NewWindow()
	for i := range 10 {
		ts := t0.Add(-time.Duration(i) * time.Minute)
		w.Add("na", Sample{Time: ts, CPU: 80, HasCPU: true, Conns: 100, HasConns: true})
		w.Add("nb", Sample{Time: ts, CPU: 40, HasCPU: true, Conns: 300, HasConns: true})
		w.Add("other", Sample{Time: ts, CPU: 0, HasCPU: true})
	}
	l := w.Load(t0, 5*time.Minute, []string{"na", "nb"})
	if l.Samples != 10 || l.CPU != 60 || l.ConnsPerNode != 200 || l.Span != 4*time.Minute {
		t.Fatalf("load = %+v", l)
	}
	w.Prune(t0.Add(-2 * time.Minute))
	if l := w.Load(t0, time.Hour, []string{"na"}); l.Samples != 3 {
		t.Fatalf("after prune %d samples, want 3", l.Samples)
	}
	w.Prune(t0.Add(time.Hour))
	if w.Len() != 0 {
		t.Fatalf("%d nodes left after pruning everything", w.Len())
	}
}

func TestSampleFromBatchTakesNodeLevelFiguresOnly(t *testing.T) {
	b := events.SampleBatch{NodeID: "na", Time: t0, Points: []events.SamplePoint{
		{Metric: events.MetricNodeCPUUtilization, Dimensions: map[string]string{events.DimNode: "na"}, Count: 1, Sum: 42},
		{Metric: events.MetricActiveConnectionCount, Dimensions: map[string]string{events.DimLoadBalancer: "lb", events.DimListener: "l"}, Count: 1, Sum: 999},
		{Metric: events.MetricActiveConnectionCount, Dimensions: map[string]string{events.DimNode: "na"}, Count: 2, Sum: 300},
	}}
	s, ok := SampleFromBatch(b)
	if !ok || s.CPU != 42 || s.Conns != 150 {
		t.Fatalf("sample = %+v ok=%v", s, ok)
	}
	if _, ok := SampleFromBatch(events.SampleBatch{Points: []events.SamplePoint{
		{Metric: events.MetricNodeCPUUtilization, Count: 1, Sum: 500},
	}}); ok {
		t.Fatal("cpu above 100% accepted")
	}
}

func TestLBFoldsScalingStateFromEvents(t *testing.T) {
	lb := NewLB("lb1")
	ev := func(v uint64, at time.Time, d any) events.Event {
		return events.Event{Envelope: events.Envelope{AggregateVersion: v, OccurredAt: at}, Data: d}
	}
	lb.Apply(ev(1, t0, &events.ELBRequested{Spec: events.LoadBalancerSpec{L7Nodes: 3, MinL7Nodes: 2, MaxL7Nodes: 6}}))
	lb.Apply(ev(2, t0, &events.ELBActive{Nodes: []string{"a", "b", "c"}}))
	if !lb.Active() || lb.Desired() != 3 || len(lb.Serving()) != 3 {
		t.Fatalf("after active: desired %d serving %v", lb.Desired(), lb.Serving())
	}
	lb.Apply(ev(3, t0.Add(time.Minute), &events.ScaleInDecided{From: 3, To: 2, Nodes: []string{"b"}}))
	if got := lb.Serving(); !slices.Equal(got, []string{"a", "c"}) || lb.Desired() != 2 || !lb.LastScale().Equal(t0.Add(time.Minute)) {
		t.Fatalf("after scale-in: serving %v desired %d", got, lb.Desired())
	}
	lb.Apply(ev(4, t0, &events.ELBActive{Nodes: []string{"a", "c"}}))
	lb.Apply(ev(5, t0, &events.ELBDeleteRequested{}))
	if lb.Active() || lb.Version() != 5 {
		t.Fatal("deleting load balancer still active")
	}
	if o := lb.Override(nil); o.SpecMin != 2 || o.SpecMax != 6 {
		t.Fatalf("override = %+v", o)
	}
}

// BenchmarkEvaluateLoadBalancer measures one evaluation of a 20-node load
// balancer with a full 5-minute window (30 samples per node).
func BenchmarkEvaluateLoadBalancer(b *testing.B) {
	w := NewWindow()
	ns := nodes(20)
	for _, n := range ns {
		for i := range 30 {
			w.Add(n, Sample{Time: t0.Add(-time.Duration(i) * 10 * time.Second), CPU: 50, HasCPU: true, Conns: 100, HasConns: true})
		}
	}
	p := DefaultPolicy()
	b.ReportAllocs()
	for b.Loop() {
		l := w.Load(t0, p.Window, ns)
		_ = Decide(Input{Now: t0, Desired: 20, Serving: ns, Policy: p, Load: l})
	}
}
