package domain

import (
	"strings"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// history builds a load balancer from payloads, one event per version.
func history(id string, datas ...any) *LB {
	lb := NewLB(id)
	for i, d := range datas {
		name, _ := events.TypeOf(d)
		lb.Apply(events.Event{Envelope: events.Envelope{ID: name, Type: name, AggregateID: id, AggregateVersion: uint64(i + 1), OccurredAt: t0}, Data: d})
	}
	return lb
}

var pol = Policy{AllocateTimeout: 10 * time.Second, VMReadyTimeout: 20 * time.Second, ApplyTimeout: 30 * time.Second, DeleteTimeout: time.Minute}

func only[T Action](t *testing.T, acts []Action) T {
	t.Helper()
	if len(acts) != 1 {
		t.Fatalf("actions = %#v, want one %T", acts, *new(T))
	}
	a, ok := acts[0].(T)
	if !ok {
		t.Fatalf("action = %#v, want %T", acts[0], *new(T))
	}
	return a
}

func req(nodes int) *events.ELBRequested {
	return &events.ELBRequested{Spec: events.LoadBalancerSpec{L7Nodes: nodes}, Deadline: t0.Add(time.Minute)}
}

var (
	vip      = &events.VIPAllocated{LoadBalancerID: "lb", Pool: "local", Address: "127.100.0.1", LVSPair: "local"}
	listener = &events.ListenerCreated{ListenerID: "l1", Spec: events.ListenerSpec{Protocol: "HTTP", ProtocolPort: 80, AdminStateUp: true}}
)

func TestTheCreateWorkflowStepsInOrder(t *testing.T) {
	now := t0.Add(time.Second)
	// Waiting for the allocator.
	only[Wait](t, history("lb", req(2)).Next(now, pol, nil))
	// VIP allocated → two nodes requested with deterministic ids.
	r := only[RequestNodes](t, history("lb", req(2), vip).Next(now, pol, nil))
	if len(r.Requests) != 2 || r.Requests[0].NodeID != "tg-lb-1" || r.Requests[1].NodeID != "tg-lb-2" || !r.Requests[0].Deadline.Equal(now.Add(20*time.Second)) {
		t.Fatalf("requests = %+v", r.Requests)
	}
	// Requested → both ensured.
	lb := history("lb", req(2), vip, &r.Requests[0], &r.Requests[1])
	if acts := lb.Next(now, pol, nil); len(acts) != 2 {
		t.Fatalf("want two EnsureNode, got %#v", acts)
	}
	// Both ready → publish the serving nodes.
	lb = history("lb", req(2), vip, &r.Requests[0], &r.Requests[1],
		&events.VMReady{NodeID: "tg-lb-1", Address: "127.101.0.2"}, &events.VMReady{NodeID: "tg-lb-2", Address: "127.101.0.3"}, listener)
	p := only[Publish](t, lb.Next(now, pol, nil))
	if p.Version != 7 || len(p.Nodes) != 2 {
		t.Fatalf("publish = %+v", p)
	}
	pub := &events.ConfigPublished{LoadBalancerID: "lb", Version: 7, Nodes: []string{"tg-lb-1", "tg-lb-2", "lvs-1"},
		NodeVersions: map[string]uint64{"tg-lb-1": 1, "tg-lb-2": 1, "lvs-1": 5}, Deadline: now.Add(30 * time.Second)}
	lb = history("lb", req(2), vip, &r.Requests[0], &r.Requests[1],
		&events.VMReady{NodeID: "tg-lb-1", Address: "127.101.0.2"}, &events.VMReady{NodeID: "tg-lb-2", Address: "127.101.0.3"}, listener, pub)
	if got := lb.AwaitedNodes(); strings.Join(got, ",") != "lvs-1,tg-lb-1,tg-lb-2" {
		t.Fatalf("awaited = %v", got)
	}
	// An LVS report of an older version does not count; the rest does.
	rec := only[RecordApplied](t, lb.Next(now, pol, map[string]Report{"tg-lb-1": {Version: 1}, "tg-lb-2": {Version: 1}, "lvs-1": {Version: 4}}))
	if len(rec.Applied) != 2 || rec.Activate != nil {
		t.Fatalf("record = %+v", rec)
	}
	rec = only[RecordApplied](t, lb.Next(now, pol, map[string]Report{"tg-lb-1": {Version: 1}, "tg-lb-2": {Version: 2}, "lvs-1": {Version: 5}}))
	if len(rec.Applied) != 3 || rec.Activate == nil || rec.Activate.Version != 7 || rec.Activate.VIP != "127.100.0.1" || len(rec.Activate.Nodes) != 2 {
		t.Fatalf("record = %+v", rec)
	}
	datas := []any{req(2), vip, &r.Requests[0], &r.Requests[1], &events.VMReady{NodeID: "tg-lb-1", Address: "127.101.0.2"},
		&events.VMReady{NodeID: "tg-lb-2", Address: "127.101.0.3"}, listener, pub}
	for i := range rec.Applied {
		datas = append(datas, &rec.Applied[i])
	}
	lb = history("lb", append(datas, rec.Activate)...)
	if lb.Phase() != PhaseActive || len(lb.Next(now, pol, nil)) != 0 {
		t.Fatalf("phase %s, next %#v; want ACTIVE at rest", lb.Phase(), lb.Next(now, pol, nil))
	}
	// A member added → PENDING_UPDATE → a new config version.
	lb = history("lb", append(datas, rec.Activate, &events.MemberAdded{MemberID: "m", Spec: events.MemberSpec{PoolID: "p", Address: "10.0.0.1", ProtocolPort: 80, AdminStateUp: true}})...)
	if lb.Phase() != PhaseUpdating {
		t.Fatalf("phase = %s", lb.Phase())
	}
	if p := only[Publish](t, lb.Next(now, pol, nil)); p.Version != lb.Version() {
		t.Fatalf("update publish = %+v", p)
	}
}

func TestFailuresRollBackACreateButNotAnUpdate(t *testing.T) {
	nodeReq := &events.VMRequested{NodeID: "tg-lb-1", Deadline: t0.Add(20 * time.Second)}
	cases := []struct {
		name     string
		lb       *LB
		now      time.Time
		step     string
		reason   string
		rollback bool
	}{
		{"allocation failed", history("lb", req(1), &events.AllocationFailed{Reason: "pool exhausted"}), t0, StepAllocateVIP, "pool exhausted", true},
		{"allocator silent", history("lb", req(1)), t0.Add(11 * time.Second), StepAllocateVIP, "no vip allocated", true},
		{"node failed", history("lb", req(1), vip, nodeReq, &events.VMFailed{NodeID: "tg-lb-1", Reason: "no host"}), t0, StepCreateVM, "no host", true},
		{"node late", history("lb", req(1), vip, nodeReq), t0.Add(21 * time.Second), StepCreateVM, "not ready by its deadline", true},
		{"config not applied", history("lb", req(1), vip, nodeReq, &events.VMReady{NodeID: "tg-lb-1", Address: "127.101.0.2"},
			&events.ConfigPublished{Version: 5, Nodes: []string{"tg-lb-1"}, NodeVersions: map[string]uint64{"tg-lb-1": 3}, Deadline: t0.Add(30 * time.Second)}),
			t0.Add(31 * time.Second), StepApplyConfig, "not applied by tg-lb-1", true},
		{"update not applied", history("lb", req(1), vip, nodeReq, &events.VMReady{NodeID: "tg-lb-1", Address: "127.101.0.2"},
			&events.ConfigPublished{Version: 5, Nodes: []string{"tg-lb-1"}, NodeVersions: map[string]uint64{"tg-lb-1": 3}, Deadline: t0.Add(30 * time.Second)},
			&events.ConfigApplied{NodeID: "tg-lb-1", Version: 3}, &events.ELBActive{Version: 5}, listener,
			&events.ConfigPublished{Version: 9, Nodes: []string{"tg-lb-1"}, NodeVersions: map[string]uint64{"tg-lb-1": 4}, Deadline: t0.Add(40 * time.Second)}),
			t0.Add(41 * time.Second), StepApplyConfig, "v9 not applied", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := only[Fail](t, c.lb.Next(c.now, pol, map[string]Report{"tg-lb-1": {Version: 2, Error: "bad"}}))
			if f.Failed.Step != c.step || !strings.Contains(f.Failed.Reason, c.reason) || f.Rollback != c.rollback {
				t.Fatalf("fail = %+v (rollback %v)", f.Failed, f.Rollback)
			}
			if len(f.Failed.Log) == 0 {
				t.Fatal("failure without a step log")
			}
		})
	}
}

func TestARolledBackCreateDeletesStragglersAndTheDeleteWorkflowEnds(t *testing.T) {
	nodeReq := &events.VMRequested{NodeID: "tg-lb-1", Deadline: t0.Add(20 * time.Second)}
	// A node became ready after the rollback: ERROR deletes it.
	lb := history("lb", req(1), vip, nodeReq, &events.VMDeleted{NodeID: "tg-lb-1"}, &events.ELBFailed{Reason: "x", Step: StepCreateVM})
	if acts := lb.Next(t0, pol, nil); len(acts) != 0 {
		t.Fatalf("rolled back and clean, yet %#v", acts)
	}
	// A change to it is answered with ELBFailed, so the API does not wait.
	lb = history("lb", req(1), vip, nodeReq, &events.VMDeleted{NodeID: "tg-lb-1"}, &events.ELBFailed{Reason: "x", Step: StepCreateVM}, listener)
	if f := only[Fail](t, lb.Next(t0, pol, nil)); f.Rollback || !strings.Contains(f.Failed.Reason, "rolled back") {
		t.Fatalf("answer = %+v", f)
	}
	// Delete: withdraw first, then delete nodes, then finish.
	ready := &events.VMReady{NodeID: "tg-lb-1", Address: "127.101.0.2"}
	del := &events.ELBDeleteRequested{Deadline: t0.Add(time.Minute)}
	only[Withdraw](t, history("lb", req(1), vip, nodeReq, ready, del).Next(t0, pol, nil))
	withdrawn := &events.ConfigPublished{Version: 6, Nodes: []string{}}
	d := only[DeleteNode](t, history("lb", req(1), vip, nodeReq, ready, del, withdrawn).Next(t0, pol, nil))
	if d.Node.ID != "tg-lb-1" {
		t.Fatalf("delete = %+v", d)
	}
	only[Finish](t, history("lb", req(1), vip, nodeReq, ready, del, withdrawn, &events.VMDeleted{NodeID: "tg-lb-1"}).Next(t0, pol, nil))
	// A delete that cannot finish by its deadline shows ERROR once, then keeps trying.
	lb = history("lb", req(1), vip, nodeReq, ready, del, withdrawn)
	f := only[Fail](t, lb.Next(t0.Add(2*time.Minute), pol, nil))
	if f.Failed.Step != StepDeleteVM || f.Rollback {
		t.Fatalf("delete failure = %+v", f)
	}
	lb = history("lb", req(1), vip, nodeReq, ready, del, withdrawn, &f.Failed)
	only[DeleteNode](t, lb.Next(t0.Add(3*time.Minute), pol, nil))
}

func TestNodeLossReplacesTheNodeThenRetiresIt(t *testing.T) {
	nodeReq := &events.VMRequested{NodeID: "tg-lb-1", Deadline: t0.Add(20 * time.Second)}
	ready := &events.VMReady{NodeID: "tg-lb-1", Address: "127.101.0.2"}
	pub := &events.ConfigPublished{Version: 5, Nodes: []string{"tg-lb-1"}, NodeVersions: map[string]uint64{"tg-lb-1": 1}, Deadline: t0.Add(time.Minute)}
	base := []any{req(1), vip, nodeReq, ready, pub, &events.ConfigApplied{NodeID: "tg-lb-1", Version: 1}, &events.ELBActive{Version: 5}, &events.NodeLost{NodeID: "tg-lb-1"}}
	lb := history("lb", base...)
	r := only[RequestNodes](t, lb.Next(t0, pol, nil))
	if r.Requests[0].NodeID != "tg-lb-2" {
		t.Fatalf("replacement = %+v", r.Requests)
	}
	base = append(base, &r.Requests[0], &events.VMReady{NodeID: "tg-lb-2", Address: "127.101.0.3"})
	p := only[Publish](t, history("lb", base...).Next(t0, pol, nil))
	if len(p.Nodes) != 1 || p.Nodes[0].ID != "tg-lb-2" {
		t.Fatalf("publish = %+v", p)
	}
	base = append(base, &events.ConfigPublished{Version: 10, Nodes: []string{"tg-lb-2"}, NodeVersions: map[string]uint64{"tg-lb-2": 1}, Deadline: t0.Add(time.Minute)},
		&events.ConfigApplied{NodeID: "tg-lb-2", Version: 1}, &events.ELBActive{Version: 10})
	d := only[DeleteNode](t, history("lb", base...).Next(t0, pol, nil))
	if d.Node.ID != "tg-lb-1" {
		t.Fatalf("retired = %+v", d)
	}
	// With a drain timeout the retired node stays until it passed.
	drain := &events.ListenerCreated{ListenerID: "l9", Spec: events.ListenerSpec{Protocol: "TCP", ProtocolPort: 9, AdminStateUp: true, ConnectionDrainTimeout: 30}}
	withDrain := append(append([]any{}, base[:len(base)-1]...), drain, &events.ConfigPublished{Version: 13, Nodes: []string{"tg-lb-2"}, NodeVersions: map[string]uint64{"tg-lb-2": 2}, Deadline: t0.Add(time.Minute)},
		&events.ConfigApplied{NodeID: "tg-lb-2", Version: 2}, &events.ELBActive{Version: 13})
	lb = history("lb", withDrain...)
	if w := only[Wait](t, lb.Next(t0.Add(10*time.Second), pol, nil)); !w.Until.Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("wait = %+v", w)
	}
	only[DeleteNode](t, lb.Next(t0.Add(31*time.Second), pol, nil))
}

func TestNodeIDsEncodeTheirLoadBalancer(t *testing.T) {
	for _, id := range []string{"lb", "3f1c-aa-9", "a-b-c"} {
		got, ok := LBOfNode(NodeIDFor(id, 12))
		if !ok || got != id {
			t.Errorf("LBOfNode(NodeIDFor(%q)) = %q %v", id, got, ok)
		}
	}
	for _, id := range []string{"wp-3", "lvs-local-1", "tg-", "tg-x-y"} {
		if _, ok := LBOfNode(id); ok {
			t.Errorf("LBOfNode(%q) claimed a load balancer", id)
		}
	}
}

func TestConfigsSplitL7AndL4(t *testing.T) {
	lb := history("lb", req(1), vip,
		&events.ListenerCreated{ListenerID: "web", Spec: events.ListenerSpec{Protocol: "HTTP", ProtocolPort: 80, AdminStateUp: true, DefaultPoolID: "p1"}},
		&events.ListenerCreated{ListenerID: "db", Spec: events.ListenerSpec{Protocol: "TCP", ProtocolPort: 5432, AdminStateUp: true, Scheduler: "sh", ForwardMethod: "DR"}},
		&events.ListenerCreated{ListenerID: "tls", Spec: events.ListenerSpec{Protocol: "TERMINATED_HTTPS", ProtocolPort: 443, AdminStateUp: true}},
		&events.PoolCreated{PoolID: "p1", Spec: events.PoolSpec{Protocol: "HTTP", LBAlgorithm: "SOURCE_IP", AdminStateUp: true}},
		&events.PoolCreated{PoolID: "p2", Spec: events.PoolSpec{ListenerID: "db", Protocol: "TCP", AdminStateUp: true}},
		&events.MemberAdded{MemberID: "a", Spec: events.MemberSpec{PoolID: "p1", Address: "10.0.0.1", ProtocolPort: 8080, Weight: 2, AdminStateUp: true}},
		&events.MemberAdded{MemberID: "down", Spec: events.MemberSpec{PoolID: "p1", Address: "10.0.0.9", ProtocolPort: 8080, Weight: 2}},
		&events.MemberAdded{MemberID: "b", Spec: events.MemberSpec{PoolID: "p2", Address: "10.0.0.2", ProtocolPort: 5432, Weight: 1, AdminStateUp: true}},
		&events.HealthMonitorSet{HealthMonitorID: "h", Spec: events.HealthMonitorSpec{PoolID: "p1", Type: "HTTP", Delay: 3, Timeout: 9, AdminStateUp: true}},
	)
	tg := lb.TengineConfig()
	if len(tg.Listeners) != 1 || tg.Listeners[0].ID != "web" || len(tg.Listeners[0].Pool.Members) != 1 {
		t.Fatalf("tengine = %+v", tg)
	}
	hc := tg.Listeners[0].Pool.HealthMonitor
	if hc == nil || hc.Interval != 3*time.Second || hc.Timeout != 3*time.Second || hc.Rise != 3 || hc.Fall != 3 {
		t.Fatalf("health check = %+v", hc)
	}
	l4 := lb.LVSConfig([]Node{{ID: "n1", Address: "127.101.0.2"}})
	if len(l4.Listeners) != 2 || l4.VIP != "127.100.0.1" {
		t.Fatalf("lvs = %+v", l4)
	}
	web, db := l4.Listeners[0], l4.Listeners[1]
	if web.Scheduler != "sh" || len(web.L4Targets) != 1 || web.L4Targets[0].Address != "127.101.0.2" || web.L4Targets[0].Port != 80 || web.Pool != nil {
		t.Fatalf("lvs web = %+v", web)
	}
	if db.Scheduler != "sh" || db.ForwardMethod != "DR" || len(db.L4Targets) != 1 || db.L4Targets[0].Address != "10.0.0.2" {
		t.Fatalf("lvs db = %+v", db)
	}
	cfg := events.NodeConfig{NodeID: "n1", Role: events.RoleLVS, Version: 1, LoadBalancers: []events.LBConfig{l4}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
