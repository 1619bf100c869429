package provisioner_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/allocator"
	"github.com/elbcloud/elb/services/provisioner"
	"github.com/elbcloud/elb/services/provisioner/adapters"
	"github.com/elbcloud/elb/services/provisioner/compute"
	"github.com/elbcloud/elb/services/provisioner/compute/local"
	"github.com/elbcloud/elb/services/provisioner/internal/testagent"
)

func TestMain(m *testing.M) {
	testagent.MaybeRunChild()
	os.Exit(m.Run())
}

const (
	lvsNode     = "lvs-local-1"
	agentSecret = "agent-secret"
)

func logger() *slog.Logger {
	if os.Getenv("ELB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// env is a running bus with the allocator; services can be (re)started.
type env struct {
	t     testing.TB
	bus   *testkit.Bus
	store *eventstore.Store
	ctx   context.Context
	url   string
}

func newEnv(t testing.TB, listen bool) *env {
	t.Helper()
	cfg := natsx.ServerConfig{}
	if listen {
		cfg = natsx.ServerConfig{Listen: "127.0.0.1:0", ServicePassword: "svc", AgentSecret: agentSecret}
	}
	bus := testkit.NATSWith(t, cfg)
	ctx := testkit.Context(t, 5*time.Minute)
	store, err := eventstore.New(ctx, bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, bus: bus, store: store, ctx: ctx, url: bus.Server.ClientURL()}
}

// service runs fn until stopped; stop waits for it to return.
type service struct {
	cancel context.CancelFunc
	done   chan error
}

func (e *env) start(fn func(ctx context.Context) error) *service {
	ctx, cancel := context.WithCancel(e.ctx)
	s := &service{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- fn(ctx) }()
	e.t.Cleanup(func() { s.stop(e.t) })
	return s
}

func (s *service) stop(t testing.TB) {
	s.cancel()
	if err := <-s.done; err != nil {
		t.Errorf("service returned: %v", err)
	}
	s.done <- nil
}

func (e *env) allocator() *service {
	return e.start(func(ctx context.Context) error {
		return allocator.Run(ctx, allocator.Config{JS: e.bus.JS, Pairs: []allocator.Pair{{Name: "local", Nodes: []string{lvsNode}}}, Logger: logger()})
	})
}

func (e *env) provisioner(d compute.Driver, mod func(*provisioner.Config)) *service {
	return e.start(func(ctx context.Context) error {
		cfg := provisioner.Config{JS: e.bus.JS, NC: e.bus.Conn, Driver: d, Logger: logger(), Tick: 100 * time.Millisecond,
			Deadlines: provisioner.Deadlines{VMReady: 20 * time.Second, ConfigApplied: 10 * time.Second}}
		if mod != nil {
			mod(&cfg)
		}
		return provisioner.Run(ctx, cfg)
	})
}

// lvsAgent answers for the LVS node in-process (the real lvs agent is not
// part of this module).
func (e *env) lvsAgent() {
	if err := testagent.InProcess(e.ctx, e.bus.JS, func(c events.NodeConfig) bool { return c.Role == events.RoleLVS }); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) localDriver(argv []string, url string, ready local.Readiness, dir string) *local.Driver {
	e.t.Helper()
	d, err := local.New(e.ctx, local.Config{Argv: argv, Env: []string{testagent.EnvVar + "=1"}, DataDir: dir, NATSURL: url, AgentSecret: agentSecret,
		Readiness: ready, JS: e.bus.JS, Settle: 50 * time.Millisecond, StopGrace: 2 * time.Second, Logger: logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		nodes, _ := d.List(ctx)
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() { defer wg.Done(); _ = d.Delete(ctx, n.ID) }()
		}
		wg.Wait()
	})
	return d
}

func (e *env) appendLB(id string, datas ...any) {
	e.t.Helper()
	for {
		_, v, err := e.store.Load(e.ctx, events.AggLoadBalancer, id)
		if err != nil {
			e.t.Fatal(err)
		}
		envs := make([]events.Envelope, len(datas))
		for i, d := range datas {
			envs[i] = events.MustNew(events.AggLoadBalancer, id, d, events.Meta{Actor: "test", CorrelationID: "corr-" + id})
		}
		_, err = e.store.Append(e.ctx, events.AggLoadBalancer, id, v, "", envs...)
		if errors.Is(err, eventstore.ErrConcurrency) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		return
	}
}

func (e *env) history(id string) []events.Event {
	evs, _, err := e.store.Load(e.ctx, events.AggLoadBalancer, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// status is the provisioning status as the API would project it.
func (e *env) status(id string) (string, events.Event) {
	st := ""
	var last events.Event
	for _, ev := range e.history(id) {
		switch ev.Type {
		case events.TypeELBRequested:
			st = "PENDING_CREATE"
		case events.TypeELBActive:
			st = "ACTIVE"
		case events.TypeELBFailed:
			st = "ERROR"
		case events.TypeELBDeleteRequested:
			st = "PENDING_DELETE"
		case events.TypeELBDeleted:
			st = "DELETED"
		default:
			continue
		}
		last = ev
	}
	return st, last
}

func (e *env) waitStatus(id string, timeout time.Duration, want ...string) events.Event {
	e.t.Helper()
	var last events.Event
	testkit.Eventually(e.t, timeout, func() bool {
		st, ev := e.status(id)
		last = ev
		for _, w := range want {
			if st == w {
				return true
			}
		}
		return false
	}, "load balancer %s reaches %v", id, want)
	return last
}

func (e *env) vipHolders() map[string]string {
	evs, _, err := e.store.Load(e.ctx, events.AggVIPPool, "local")
	if err != nil {
		e.t.Fatal(err)
	}
	held := map[string]string{}
	for _, ev := range evs {
		switch d := ev.Data.(type) {
		case *events.VIPAllocated:
			if other, dup := held[d.Address]; dup {
				e.t.Fatalf("vip %s handed to %s while %s holds it", d.Address, d.LoadBalancerID, other)
			}
			held[d.Address] = d.LoadBalancerID
		case *events.VIPReleased:
			delete(held, d.Address)
		}
	}
	return held
}

func (e *env) desired(node string) (events.NodeConfig, bool) {
	d, err := adapters.NewDesired(e.ctx, e.bus.JS)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg, ok, err := d.Get(e.ctx, node)
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg, ok
}

func request(spec events.LoadBalancerSpec, deadline time.Duration) *events.ELBRequested {
	return &events.ELBRequested{Spec: spec, Deadline: time.Now().Add(deadline).UTC()}
}

func httpTree(lb string, port int) []any {
	return []any{
		&events.ListenerCreated{ListenerID: "lis-" + lb, Spec: events.ListenerSpec{LoadBalancerID: lb, Protocol: "HTTP", ProtocolPort: port, AdminStateUp: true, DefaultPoolID: "pool-" + lb}},
		&events.PoolCreated{PoolID: "pool-" + lb, Spec: events.PoolSpec{LoadBalancerID: lb, Protocol: "HTTP", LBAlgorithm: "ROUND_ROBIN", AdminStateUp: true}},
		&events.MemberAdded{MemberID: "m1-" + lb, Spec: events.MemberSpec{PoolID: "pool-" + lb, Address: "127.0.0.1", ProtocolPort: 9001, Weight: 1, AdminStateUp: true}},
		&events.HealthMonitorSet{HealthMonitorID: "hm-" + lb, Spec: events.HealthMonitorSpec{PoolID: "pool-" + lb, Type: "HTTP", Delay: 2, Timeout: 1, MaxRetries: 2, MaxRetriesDown: 2, URLPath: "/", AdminStateUp: true}},
	}
}

func TestCreateUpdateDeleteWithLocalAgentProcesses(t *testing.T) {
	e := newEnv(t, true)
	exe, _ := os.Executable()
	d := e.localDriver(testagent.Argv(exe), e.url, local.ReadyHeartbeat, t.TempDir())
	e.lvsAgent()
	e.allocator()
	e.provisioner(d, nil)

	lb := "lb-happy"
	e.appendLB(lb, append([]any{request(events.LoadBalancerSpec{Name: "web", L7Nodes: 2}, time.Minute)}, httpTree(lb, 8080)...)...)
	ev := e.waitStatus(lb, 60*time.Second, "ACTIVE", "ERROR")
	active, ok := ev.Data.(*events.ELBActive)
	if !ok {
		t.Fatalf("create ended in %s: %+v", ev.Type, ev.Data)
	}
	if !strings.HasPrefix(active.VIP, "127.100.0.") || len(active.Nodes) != 2 {
		t.Fatalf("active = %+v", active)
	}
	// Every tengine node runs the HTTP listener on its own address; the LVS
	// node sends the VIP's port 8080 to them.
	var addrs []string
	for _, n := range active.Nodes {
		cfg, ok := e.desired(n)
		if !ok || cfg.Role != events.RoleTengine || len(cfg.LoadBalancers) != 1 {
			t.Fatalf("tengine config of %s = %+v", n, cfg)
		}
		l := cfg.LoadBalancers[0].Listeners
		if len(l) != 1 || l[0].Port != 8080 || l[0].Pool == nil || len(l[0].Pool.Members) != 1 || l[0].Pool.HealthMonitor == nil {
			t.Fatalf("tengine listener of %s = %+v", n, l)
		}
		if !strings.HasPrefix(cfg.Address, "127.101.") {
			t.Fatalf("node address %q", cfg.Address)
		}
		addrs = append(addrs, cfg.Address)
	}
	lvs, ok := e.desired(lvsNode)
	if !ok || len(lvs.LoadBalancers) != 1 || lvs.LoadBalancers[0].VIP != active.VIP {
		t.Fatalf("lvs config = %+v", lvs)
	}
	var targets []string
	for _, tg := range lvs.LoadBalancers[0].Listeners[0].L4Targets {
		targets = append(targets, fmt.Sprintf("%s:%d", tg.Address, tg.Port))
	}
	sort.Strings(targets)
	sort.Strings(addrs)
	if len(targets) != 2 || targets[0] != addrs[0]+":8080" || targets[1] != addrs[1]+":8080" {
		t.Fatalf("lvs targets %v, node addresses %v", targets, addrs)
	}

	// Update: a TCP listener with a member → new config version → ACTIVE.
	e.appendLB(lb,
		&events.ListenerCreated{ListenerID: "tcp-" + lb, Spec: events.ListenerSpec{LoadBalancerID: lb, Protocol: "TCP", ProtocolPort: 5432, AdminStateUp: true, DefaultPoolID: "tcppool"}},
		&events.PoolCreated{PoolID: "tcppool", Spec: events.PoolSpec{LoadBalancerID: lb, Protocol: "TCP", LBAlgorithm: "LEAST_CONNECTIONS", AdminStateUp: true}},
		&events.MemberAdded{MemberID: "db1", Spec: events.MemberSpec{PoolID: "tcppool", Address: "127.0.0.2", ProtocolPort: 5432, Weight: 3, AdminStateUp: true}})
	testkit.Eventually(t, 30*time.Second, func() bool {
		st, ev := e.status(lb)
		a, _ := ev.Data.(*events.ELBActive)
		return st == "ACTIVE" && a != nil && a.Version > active.Version
	}, "update applied")
	lvs, _ = e.desired(lvsNode)
	if l := lvs.LoadBalancers[0].Listeners; len(l) != 2 || l[0].Port != 5432 || l[0].Scheduler != "wlc" || l[0].L4Targets[0].Address != "127.0.0.2" || l[0].L4Targets[0].Weight != 3 {
		t.Fatalf("lvs listeners after update = %+v", l)
	}

	// Delete: config withdrawn, node processes gone, VIP back in the pool.
	e.appendLB(lb, &events.ELBDeleteRequested{Cascade: true, Deadline: time.Now().Add(time.Minute)})
	e.waitStatus(lb, 30*time.Second, "DELETED")
	for _, n := range active.Nodes {
		if _, ok := e.desired(n); ok {
			t.Errorf("desired config of %s still there", n)
		}
	}
	if lvs, _ := e.desired(lvsNode); len(lvs.LoadBalancers) != 0 {
		t.Errorf("lvs still carries %+v", lvs.LoadBalancers)
	}
	if nodes, _ := d.List(e.ctx); len(nodes) != 0 {
		t.Errorf("nodes left: %+v", nodes)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { _, held := e.vipHolders()[active.VIP]; return !held }, "vip released")
	var types []string
	for _, ev := range e.history(lb) {
		types = append(types, ev.Type)
	}
	t.Logf("history: %s", strings.Join(types, " "))
}
