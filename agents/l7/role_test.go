package l7

import (
	"context"
	"testing"
	"time"

	"github.com/elbcloud/elb/agents/health"
	"github.com/elbcloud/elb/events"
)

type fakeChecker struct {
	down    map[string]bool
	targets []health.Target
}

func (f *fakeChecker) Set(ts []health.Target) { f.targets = ts }
func (f *fakeChecker) Healthy(key string) (bool, bool) {
	return !f.down[key], true
}
func (f *fakeChecker) Close() {}

type fakeDriver struct {
	applied []Desired
	snap    Snapshot
}

func (f *fakeDriver) Name() string { return "fake" }
func (f *fakeDriver) Apply(_ context.Context, d Desired) error {
	f.applied = append(f.applied, d)
	return nil
}
func (f *fakeDriver) Stats() Snapshot { return f.snap }
func (f *fakeDriver) Close() error    { return nil }

type nopHooks struct{}

func (nopHooks) ReportHealth(events.HealthReport) {}
func (nopHooks) Trigger()                         {}

func cfg(failOpen bool) *events.NodeConfig {
	hm := &events.HealthCheckConfig{Type: "HTTP", Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, URLPath: "/h"}
	return &events.NodeConfig{NodeID: "n1", Role: events.RoleTengine, Version: 3, LoadBalancers: []events.LBConfig{{ID: "lb1", Listeners: []events.ListenerConfig{
		{ID: "tcp", Protocol: "TCP", Port: 22},
		{ID: "l1", Protocol: "HTTP", Port: 80, InsertHeaders: map[string]string{"X-Forwarded-Proto": "true"}, Pool: &events.PoolConfig{
			ID: "p1", Algorithm: "LEAST_CONNECTIONS", FailOpen: failOpen, HealthMonitor: hm,
			SessionPersistence: &events.SessionPersistence{Type: "APP_COOKIE", CookieName: "SID"},
			Members: []events.MemberConfig{
				{ID: "a", Address: "10.0.0.1", Port: 80, Weight: 1, MonitorPort: 8081},
				{ID: "b", Address: "10.0.0.2", Port: 80, Weight: 2},
				{ID: "c", Address: "10.0.0.3", Port: 80, Weight: 0},
			},
		}},
	}}}}
}

func TestRoleBuildsDesiredStateFromHealthyMembers(t *testing.T) {
	chk := &fakeChecker{down: map[string]bool{healthKey("l1", "p1", "a"): true}}
	drv := &fakeDriver{}
	r := newRole(Options{NodeID: "n1", Address: "192.0.2.1"}, drv, nopHooks{}, chk)
	if err := r.Reconcile(context.Background(), cfg(false)); err != nil {
		t.Fatal(err)
	}
	if len(chk.targets) != 3 || chk.targets[0].Port != 8081 {
		t.Fatalf("health targets %+v", chk.targets)
	}
	d := drv.applied[0]
	if len(d.Listeners) != 1 {
		t.Fatalf("only HTTP listeners belong to the L7 tier: %+v", d.Listeners)
	}
	l := d.Listeners[0]
	if l.Bind != "192.0.2.1:80" || l.Algorithm != AlgLeastConn || l.StickyType != StickyAppCookie || l.CookieName != "SID" || !l.XForwardedProto {
		t.Fatalf("listener %+v", l)
	}
	if len(l.Members) != 1 || l.Members[0].ID != "b" {
		t.Fatalf("members in rotation %+v, want only b (a unhealthy, c weight 0)", l.Members)
	}
	r.mu.Lock()
	hc := r.hosts["l1"]
	r.mu.Unlock()
	if hc.healthy != 2 || hc.unhealthy != 1 {
		t.Fatalf("host counts %+v", hc)
	}
}

func TestRoleFailsOpenWhenEveryMemberIsDown(t *testing.T) {
	down := map[string]bool{healthKey("l1", "p1", "a"): true, healthKey("l1", "p1", "b"): true, healthKey("l1", "p1", "c"): true}
	for _, failOpen := range []bool{false, true} {
		r := newRole(Options{NodeID: "n1"}, &fakeDriver{}, nopHooks{}, &fakeChecker{down: down})
		l := r.Desired(cfg(failOpen)).Listeners[0]
		want := 0
		if failOpen {
			want = 2 // a and b; c is drained by weight 0
		}
		if len(l.Members) != want {
			t.Fatalf("fail open %v: %d members, want %d", failOpen, len(l.Members), want)
		}
		if l.Bind != "0.0.0.0:80" {
			t.Fatalf("bind %s", l.Bind)
		}
	}
}

func TestRoleDrainingNodeServesNoListeners(t *testing.T) {
	c := cfg(false)
	c.Draining = true
	r := newRole(Options{NodeID: "n1"}, &fakeDriver{}, nopHooks{}, &fakeChecker{})
	if d := r.Desired(c); len(d.Listeners) != 0 {
		t.Fatalf("draining node has listeners %+v", d.Listeners)
	}
}

func TestRoleSamplesUseAWSNamesAndBoundTopK(t *testing.T) {
	ips := map[string]int{}
	for i := 0; i < 50; i++ {
		ips[string(rune('A'+i))] = i + 1
	}
	drv := &fakeDriver{snap: Snapshot{NodeActiveConnections: 7, Listeners: map[string]*ListenerStats{"l1": {
		Requests: 4, LatencySum: 0.4, LatencyMin: 0.05, LatMax: 0.2, Latencies: []float64{0.05, 0.1, 0.05, 0.2},
		ELB5xx: 1, Backend: [4]int{3, 0, 0, 0}, BackendConnErrors: 2, ClientIPs: ips, URLs: map[string]int{"/": 4}, ActiveConnections: 3,
	}}}}
	r := newRole(Options{NodeID: "n1", AvailabilityZone: "az1"}, drv, nopHooks{}, &fakeChecker{})
	if err := r.Reconcile(context.Background(), cfg(false)); err != nil {
		t.Fatal(err)
	}
	got := map[string]events.SamplePoint{}
	topIPs := 0
	for _, p := range r.Samples(time.Now()) {
		if !events.KnownMetric(p.Metric) {
			t.Fatalf("unknown metric %s", p.Metric)
		}
		if p.Metric == events.MetricClientIPRequestCount {
			topIPs++
			continue
		}
		if p.Dimensions[events.DimNode] != "" {
			got["node:"+p.Metric] = p
			continue
		}
		got[p.Metric] = p
	}
	if topIPs != events.TopK {
		t.Fatalf("%d top client IPs, want %d", topIPs, events.TopK)
	}
	if p := got[events.MetricLatency]; p.Count != 4 || p.Max != 0.2 || len(p.Values) != 4 || p.Dimensions[events.DimAvailabilityZone] != "az1" {
		t.Fatalf("latency %+v", p)
	}
	for metric, want := range map[string]float64{
		events.MetricRequestCount: 4, events.MetricHTTPCodeELB5XX: 1, events.MetricHTTPCodeBackend2XX: 3,
		events.MetricBackendConnectionErrors: 2, events.MetricActiveConnectionCount: 3, events.MetricHealthyHostCount: 3,
		events.MetricUnHealthyHostCount: 0, events.MetricSurgeQueueLength: 0, events.MetricSpilloverCount: 0,
		"node:" + events.MetricActiveConnectionCount: 7,
	} {
		if p, ok := got[metric]; !ok || p.Sum != want {
			t.Errorf("%s = %+v, want sum %v", metric, p, want)
		}
	}
}
