package lvs

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/agents/app"
	"github.com/elbcloud/elb/agents/health"
	"github.com/elbcloud/elb/agents/l4"
	"github.com/elbcloud/elb/agents/l4/userspace"
	"github.com/elbcloud/elb/agents/runtime"
	"github.com/elbcloud/elb/agents/vrrp"
	"github.com/elbcloud/elb/events"
)

type fakeChecker struct {
	mu      sync.Mutex
	targets []health.Target
	down    map[string]bool
}

func (f *fakeChecker) Set(ts []health.Target) { f.mu.Lock(); f.targets = ts; f.mu.Unlock() }
func (f *fakeChecker) Healthy(k string) (bool, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.down[k], true
}
func (f *fakeChecker) Close() {}

type fakeHooks struct {
	mu       sync.Mutex
	reports  []events.HealthReport
	triggers int
}

func (h *fakeHooks) ReportHealth(r events.HealthReport) {
	h.mu.Lock()
	h.reports = append(h.reports, r)
	h.mu.Unlock()
}
func (h *fakeHooks) Trigger() { h.mu.Lock(); h.triggers++; h.mu.Unlock() }

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func nodeConfig() *events.NodeConfig {
	return &events.NodeConfig{NodeID: "lvs-1", Role: events.RoleLVS, Version: 3, LoadBalancers: []events.LBConfig{{
		ID: "lb-1", VIP: "198.18.2.10",
		Listeners: []events.ListenerConfig{
			{ID: "l-http", Protocol: "HTTP", Port: 80, L4Targets: []events.Target{
				{ID: "t1", Address: "198.18.10.2", Port: 80, Weight: 1},
				{ID: "t2", Address: "198.18.11.2", Port: 80, Weight: 2},
			}},
			{ID: "l-udp", Protocol: "UDP", Port: 53, Scheduler: "SH", ForwardMethod: "NAT", PersistenceTimeout: 60,
				L4Targets: []events.Target{{ID: "m1", Address: "198.18.12.2", Port: 5353, Weight: 5}}},
			{ID: "l-tcp", Protocol: "TCP", Port: 443, Pool: &events.PoolConfig{ID: "p", Algorithm: "LEAST_CONNECTIONS"},
				L4Targets: []events.Target{{ID: "m2", Address: "198.18.10.2", Port: 8443, Weight: 1}}},
		},
	}}}
}

func TestDesiredMapsListenersToVirtualServices(t *testing.T) {
	r := newRole(Options{NodeID: "lvs-1"}, userspace.New(userspace.Config{}), nil, &fakeChecker{})
	st, err := r.Desired(nodeConfig())
	if err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("198.18.2.10")
	want := l4.State{Services: []l4.Service{
		{VIP: vip, Port: 80, Protocol: l4.TCP, Scheduler: l4.WRR, Forward: l4.DR, Destinations: []l4.Destination{
			{Addr: netip.MustParseAddr("198.18.10.2"), Port: 80, Weight: 1}, {Addr: netip.MustParseAddr("198.18.11.2"), Port: 80, Weight: 2}}},
		{VIP: vip, Port: 53, Protocol: l4.UDP, Scheduler: l4.SH, Persistence: 60, Forward: l4.NAT, Destinations: []l4.Destination{
			{Addr: netip.MustParseAddr("198.18.12.2"), Port: 5353, Weight: 5}}},
		{VIP: vip, Port: 443, Protocol: l4.TCP, Scheduler: l4.WLC, Forward: l4.DR, Destinations: []l4.Destination{
			{Addr: netip.MustParseAddr("198.18.10.2"), Port: 8443, Weight: 1}}},
	}}
	if !l4.Equal(st, want) {
		t.Fatalf("desired\n got %+v\nwant %+v", l4.Normalize(st), l4.Normalize(want))
	}
	// UDP without a monitor is not checked; the others are.
	if n := len(Targets(nodeConfig(), r.opts.DefaultCheck)); n != 3 {
		t.Fatalf("%d health targets, want 3", n)
	}
}

func TestDrainingConfigLeavesNoServices(t *testing.T) {
	r := newRole(Options{}, userspace.New(userspace.Config{}), nil, &fakeChecker{})
	cfg := nodeConfig()
	cfg.Draining = true
	st, err := r.Desired(cfg)
	if err != nil || len(st.Services) != 0 {
		t.Fatalf("draining node: %+v %v", st, err)
	}
}

func weightOf(st l4.State, port uint16, addr string) (int, bool) {
	for _, s := range st.Services {
		if s.Port != port {
			continue
		}
		for _, d := range s.Destinations {
			if d.Addr.String() == addr {
				return d.Weight, true
			}
		}
	}
	return 0, false
}

func TestFailingTargetDrainsThenLeaves(t *testing.T) {
	ck := &fakeChecker{down: map[string]bool{}}
	c := &clock{t: time.Unix(1000, 0)}
	hooks := &fakeHooks{}
	r := newRole(Options{DrainTimeout: 10 * time.Second, Now: c.now}, userspace.New(userspace.Config{}), hooks, ck)
	cfg := nodeConfig()
	if _, err := r.Desired(cfg); err != nil {
		t.Fatal(err)
	}
	ck.down["l-http/t2"] = true
	st, _ := r.Desired(cfg)
	if w, ok := weightOf(st, 80, "198.18.11.2"); !ok || w != 0 {
		t.Fatalf("failing target: weight %d present %v, want 0 (draining)", w, ok)
	}
	c.t = c.t.Add(11 * time.Second)
	st, _ = r.Desired(cfg)
	if _, ok := weightOf(st, 80, "198.18.11.2"); ok {
		t.Fatalf("failing target still present after the drain timeout")
	}
	c.t = c.t.Add(time.Second)
	if st, _ = r.Desired(cfg); func() bool { _, ok := weightOf(st, 80, "198.18.11.2"); return ok }() {
		t.Fatalf("failing target came back to drain again")
	}
	// Recovery brings it back at its weight.
	ck.down["l-http/t2"] = false
	st, _ = r.Desired(cfg)
	if w, _ := weightOf(st, 80, "198.18.11.2"); w != 2 {
		t.Fatalf("recovered target weight %d, want 2", w)
	}
	// A target removed from the config drains too.
	cfg.LoadBalancers[0].Listeners[0].L4Targets = cfg.LoadBalancers[0].Listeners[0].L4Targets[:1]
	st, _ = r.Desired(cfg)
	if w, ok := weightOf(st, 80, "198.18.11.2"); !ok || w != 0 {
		t.Fatalf("removed target: weight %d present %v, want draining at 0", w, ok)
	}
	c.t = c.t.Add(11 * time.Second)
	st, _ = r.Desired(cfg)
	if _, ok := weightOf(st, 80, "198.18.11.2"); ok {
		t.Fatal("removed target still present after draining")
	}
}

func TestFailOpenKeepsAllTargetsWhenAllFail(t *testing.T) {
	ck := &fakeChecker{down: map[string]bool{"l-tcp/m2": true}}
	r := newRole(Options{}, userspace.New(userspace.Config{}), nil, ck)
	cfg := nodeConfig()
	cfg.LoadBalancers[0].Listeners[2].Pool.FailOpen = true
	st, _ := r.Desired(cfg)
	if w, _ := weightOf(st, 443, "198.18.10.2"); w != 1 {
		t.Fatalf("fail-open pool: weight %d, want 1", w)
	}
}

func eventually(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKilledBackendLeavesRotationWithTheRealChecker runs the role with the
// userspace driver and the shared health checker against real loopback
// backends.
func TestKilledBackendLeavesRotationWithTheRealChecker(t *testing.T) {
	var lns []net.Listener
	var targets []events.Target
	for i := range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "b%d\n", i)
				c.Close()
			}
		}()
		lns = append(lns, ln)
		ap := netip.MustParseAddrPort(ln.Addr().String())
		targets = append(targets, events.Target{ID: fmt.Sprint("t", i), Address: "127.0.0.1", Port: int(ap.Port()), Weight: 1})
	}
	drv := userspace.New(userspace.Config{})
	hooks := &fakeHooks{}
	r := New(Options{NodeID: "lvs-1", DrainTimeout: 200 * time.Millisecond,
		DefaultCheck: events.HealthCheckConfig{Type: health.TypeTCP, Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 2}},
		drv, hooks)
	defer r.Close()
	cfg := &events.NodeConfig{NodeID: "lvs-1", Role: events.RoleLVS, Version: 1, LoadBalancers: []events.LBConfig{{
		ID: "lb", VIP: "127.0.79.10", Listeners: []events.ListenerConfig{{ID: "l", Protocol: "TCP", Port: 17100, ForwardMethod: "NAT", L4Targets: targets}},
	}}}
	ctx := context.Background()
	if err := r.Reconcile(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	lns[1].Close()
	eventually(t, 5*time.Second, func() error {
		if err := r.Reconcile(ctx, cfg); err != nil {
			return err
		}
		st, _ := drv.Observed(ctx)
		if len(st.Services) != 1 || len(st.Services[0].Destinations) != 1 {
			return fmt.Errorf("destinations %+v", st.Services)
		}
		return nil
	})
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	if len(hooks.reports) == 0 || hooks.reports[0].Healthy || hooks.reports[0].MemberID != "t1" {
		t.Fatalf("health reports %+v, want t1 unhealthy", hooks.reports)
	}
	pts := r.Samples(time.Now())
	found := false
	for _, p := range pts {
		if p.Metric == events.MetricUnHealthyHostCount && p.Sum == 1 {
			found = true
		}
	}
	if !found {
		t.Fatalf("no UnHealthyHostCount=1 in %+v", pts)
	}
}

// The role plugs into the shared agent runtime.
var _ runtime.Role = (*Role)(nil)

func TestFactoryRegistersTheRoleWithTheApp(t *testing.T) {
	cfg, err := app.ParseFlags([]string{"--role", "lvs", "--node-id", "lvs-1", "--driver", "userspace", "--state-dir", t.TempDir()}, nil)
	if err != nil {
		t.Fatalf("app does not know the lvs role: %v", err)
	}
	role, closer, err := Factory(cfg, &fakeHooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if role.Name() != events.RoleLVS || role.Driver() != "userspace" {
		t.Fatalf("role %s driver %s", role.Name(), role.Driver())
	}
	if _, _, err := Factory(app.Config{Driver: "bogus", NodeID: "x"}, &fakeHooks{}); err == nil {
		t.Fatal("unknown driver accepted")
	}
}

type fakeVRRP struct {
	mu      sync.Mutex
	applied []vrrp.Config
	closed  bool
}

func (f *fakeVRRP) Apply(c vrrp.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, c)
	return nil
}
func (f *fakeVRRP) Close() error { f.closed = true; return nil }

func TestReconcileRendersTheVIPsIntoKeepalived(t *testing.T) {
	fv := &fakeVRRP{}
	r := newRole(Options{NodeID: "lvs-1"}, userspace.New(userspace.Config{}), nil, &fakeChecker{}).
		WithVRRP(fv, vrrp.Pair{Name: "pair_1", Interface: "eth0", VirtualRouterID: 9, Priority: 100, Backup: true})
	cfg := &events.NodeConfig{NodeID: "lvs-1", Role: events.RoleLVS, Version: 1, LoadBalancers: []events.LBConfig{{
		ID: "lb", VIP: "127.0.79.30", Listeners: []events.ListenerConfig{{ID: "l", Protocol: "TCP", Port: 17300, ForwardMethod: "NAT",
			L4Targets: []events.Target{{ID: "t", Address: "127.0.0.1", Port: 1, Weight: 1}}}},
	}}}
	if err := r.Reconcile(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if len(fv.applied) != 1 || len(fv.applied[0].Instances) != 1 || fv.applied[0].Instances[0].VIPs[0].String() != "127.0.79.30/32" || !fv.closed {
		t.Fatalf("keepalived got %+v (closed %v)", fv.applied, fv.closed)
	}
}
