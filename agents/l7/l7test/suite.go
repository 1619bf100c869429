package l7test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/elbcloud/elb/agents/internal/natstest"
	"github.com/elbcloud/elb/agents/l7"
	"github.com/elbcloud/elb/agents/runtime"
	"github.com/elbcloud/elb/events"
)

// Factory returns a fresh driver whose data lives in t.TempDir(); the suite
// closes it.
type Factory func(t *testing.T) l7.Driver

// Run runs the behaviour suite against drivers from newDriver.
func Run(t *testing.T, newDriver Factory) {
	t.Run("traffic spreads over three members", func(t *testing.T) { testSpread(t, newDriver) })
	t.Run("a weight change moves the distribution", func(t *testing.T) { testWeights(t, newDriver) })
	t.Run("source ip and cookie stickiness keep a client on one member", func(t *testing.T) { testSticky(t, newDriver) })
	t.Run("allowed cidrs reject other clients and XFF is set", func(t *testing.T) { testAllowAndXFF(t, newDriver) })
	t.Run("large request and response bodies pass through", func(t *testing.T) { testLargeBodies(t, newDriver) })
	t.Run("a removed listener finishes its in-flight requests", func(t *testing.T) { testDrain(t, newDriver) })
	t.Run("an empty pool answers 503", func(t *testing.T) { testEmptyPool(t, newDriver) })
	t.Run("a killed member leaves rotation and no client sees an error", func(t *testing.T) { testKilledMember(t, newDriver) })
	t.Run("twenty config changes under load fail no request", func(t *testing.T) { testChangesUnderLoad(t, newDriver) })
	t.Run("metrics count requests per listener", func(t *testing.T) { testMetrics(t, newDriver) })
	t.Run("bus outage keeps traffic flowing and the agent resyncs", func(t *testing.T) { testBusOutage(t, newDriver) })
}

func open(t *testing.T, newDriver Factory) l7.Driver {
	d := newDriver(t)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func members(bs []*Backend, weights ...int) []l7.Member {
	out := make([]l7.Member, len(bs))
	for i, b := range bs {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		out[i] = l7.Member{ID: b.Name, Address: b.Host, Port: b.Port, Weight: w}
	}
	return out
}

func backends(t *testing.T, n int) []*Backend {
	out := make([]*Backend, n)
	for i := range out {
		out[i] = StartBackend(t, "m"+string(rune('1'+i)))
	}
	return out
}

func listener(bind string, ms []l7.Member) l7.Listener {
	return l7.Listener{ID: "l1", LoadBalancerID: "lb1", Bind: bind, PoolID: "p1", Algorithm: l7.AlgRoundRobin, Members: ms,
		ConnectTimeout: time.Second, MemberTimeout: 5 * time.Second, ClientTimeout: 10 * time.Second, DrainTimeout: 2 * time.Second}
}

func apply(t *testing.T, d l7.Driver, ls ...l7.Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Apply(ctx, l7.Desired{Listeners: ls}); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

func counts(bs []*Backend) []int64 {
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.Count()
	}
	return out
}

func send(t *testing.T, url string, n int) {
	t.Helper()
	c := Client()
	defer c.CloseIdleConnections()
	for i := 0; i < n; i++ {
		code, body, _, err := Get(c, url)
		if err != nil || code != http.StatusOK {
			t.Fatalf("request %d: status %d body %q err %v", i, code, body, err)
		}
	}
}

func testSpread(t *testing.T, newDriver Factory) {
	d := open(t, newDriver)
	bs := backends(t, 3)
	bind, _ := FreeBind(t)
	apply(t, d, listener(bind, members(bs)))
	send(t, "http://"+bind+"/", 300)
	for i, c := range counts(bs) {
		if c < 60 || c > 140 {
			t.Fatalf("member %d got %d of 300 requests: %v", i, c, counts(bs))
		}
	}
}

func testWeights(t *testing.T, newDriver Factory) {
	d := open(t, newDriver)
	bs := backends(t, 3)
	bind, _ := FreeBind(t)
	apply(t, d, listener(bind, members(bs, 1, 1, 1)))
	send(t, "http://"+bind+"/", 30)
	apply(t, d, listener(bind, members(bs, 1, 1, 6)))
	before := counts(bs)
	send(t, "http://"+bind+"/", 400)
	after := counts(bs)
	third := after[2] - before[2]
	if third < 240 { // expected 300 of 400
		t.Fatalf("member with weight 6 got %d of 400 requests (before %v after %v)", third, before, after)
	}
}

func testSticky(t *testing.T, newDriver Factory) {
	d := open(t, newDriver)
	bs := backends(t, 3)
	bindIP, _ := FreeBind(t)
	bindCookie, _ := FreeBind(t)
	lip := listener(bindIP, members(bs))
	lip.ID, lip.Algorithm = "l-ip", l7.AlgSourceIP
	lc := listener(bindCookie, members(bs))
	lc.ID, lc.StickyType = "l-cookie", l7.StickyHTTPCookie
	apply(t, d, lip, lc)

	before := counts(bs)
	send(t, "http://"+bindIP+"/", 30)
	moved := 0
	for i, c := range counts(bs) {
		if c != before[i] {
			moved++
		}
	}
	if moved != 1 {
		t.Fatalf("source-ip hashing spread one client over %d members", moved)
	}

	c := Client()
	defer c.CloseIdleConnections()
	_, first, hdr, err := Get(c, "http://"+bindCookie+"/")
	if err != nil {
		t.Fatal(err)
	}
	var cookie string
	for _, sc := range hdr.Values("Set-Cookie") {
		if strings.HasPrefix(sc, l7.InsertCookieName+"=") {
			cookie, _, _ = strings.Cut(sc, ";")
		}
	}
	if cookie == "" {
		t.Fatalf("no %s cookie inserted: %v", l7.InsertCookieName, hdr)
	}
	for i := 0; i < 20; i++ {
		code, body, hdr, err := Get(c, "http://"+bindCookie+"/", "Cookie", cookie)
		if err != nil || code != 200 || body != first {
			t.Fatalf("request %d with cookie went to %q (first %q) err %v", i, body, first, err)
		}
		if len(hdr.Values("Set-Cookie")) > 0 {
			t.Fatalf("cookie re-inserted for a pinned client: %v", hdr.Values("Set-Cookie"))
		}
	}
}

func testAllowAndXFF(t *testing.T, newDriver Factory) {
	d := open(t, newDriver)
	bs := backends(t, 1)
	bindDeny, _ := FreeBind(t)
	bindAllow, _ := FreeBind(t)
	deny := listener(bindDeny, members(bs))
	deny.ID, deny.AllowedCIDRs = "l-deny", []string{"10.0.0.0/8"}
	allow := listener(bindAllow, members(bs))
	allow.ID, allow.AllowedCIDRs = "l-allow", []string{"10.0.0.0/8", "127.0.0.0/8"}
	apply(t, d, deny, allow)
	c := Client()
	defer c.CloseIdleConnections()
	if code, _, _, err := Get(c, "http://"+bindDeny+"/"); err != nil || code != http.StatusForbidden {
		t.Fatalf("denied client got %d %v", code, err)
	}
	code, _, hdr, err := Get(c, "http://"+bindAllow+"/", "X-Forwarded-For", "192.0.2.7")
	if err != nil || code != http.StatusOK {
		t.Fatalf("allowed client got %d %v", code, err)
	}
	if got := hdr.Get("X-Seen-XFF"); got != "192.0.2.7, 127.0.0.1" {
		t.Fatalf("member saw X-Forwarded-For %q", got)
	}
}

func testLargeBodies(t *testing.T, newDriver Factory) {
	d := open(t, newDriver)
	bs := backends(t, 1)
	bind, _ := FreeBind(t)
	apply(t, d, listener(bind, members(bs)))
	c := Client()
	defer c.CloseIdleConnections()
	body := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	resp, err := c.Post("http://"+bind+"/echo", "application/octet-stream", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(got) != body {
		t.Fatalf("echo of 1 MiB: status %d, %d bytes back, err %v", resp.StatusCode, len(got), err)
	}
	code, big, _, err := Get(c, "http://"+bind+"/big")
	if err != nil || code != 200 || len(big) != 2<<20 {
		t.Fatalf("2 MiB response: status %d, %d bytes, err %v", code, len(big), err)
	}
}

func testDrain(t *testing.T, newDriver Factory) {
	d := open(t, newDriver)
	bs := backends(t, 1)
	bind, _ := FreeBind(t)
	apply(t, d, listener(bind, members(bs)))
	c := Client()
	defer c.CloseIdleConnections()
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	before := bs[0].Count()
	go func() {
		code, body, _, err := Get(c, "http://"+bind+"/slow")
		done <- result{code, body, err}
	}()
	Eventually(t, 10*time.Second, func() bool { return bs[0].Count() > before }) // in flight
	apply(t, d)                                                                  // remove every listener
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "slow" {
		t.Fatalf("in-flight request across the removal: %d %q %v", r.code, r.body, r.err)
	}
	Eventually(t, 10*time.Second, func() bool {
		_, _, _, err := Get(Client(), "http://"+bind+"/")
		return err != nil // the listener is gone
	})
}

func testEmptyPool(t *testing.T, newDriver Factory) {
	d := open(t, newDriver)
	bind, _ := FreeBind(t)
	apply(t, d, listener(bind, nil))
	c := Client()
	defer c.CloseIdleConnections()
	if code, _, _, err := Get(c, "http://"+bind+"/"); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("empty pool answered %d %v", code, err)
	}
}

// fakeHooks runs the role's reconcile on every trigger, like the runtime.
type fakeHooks struct {
	mu      sync.Mutex
	reports []events.HealthReport
	trig    chan struct{}
}

func (h *fakeHooks) ReportHealth(r events.HealthReport) {
	h.mu.Lock()
	h.reports = append(h.reports, r)
	h.mu.Unlock()
}

func (h *fakeHooks) Trigger() {
	select {
	case h.trig <- struct{}{}:
	default:
	}
}

func (h *fakeHooks) unhealthy(member string) (events.HealthReport, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.reports {
		if r.MemberID == member && !r.Healthy {
			return r, true
		}
	}
	return events.HealthReport{}, false
}

func nodeConfig(version uint64, port int, bs []*Backend, weights []int, hm *events.HealthCheckConfig) *events.NodeConfig {
	var ms []events.MemberConfig
	for i, b := range bs {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		ms = append(ms, events.MemberConfig{ID: b.Name, Address: b.Host, Port: b.Port, Weight: w})
	}
	return &events.NodeConfig{NodeID: "n1", Role: events.RoleTengine, Version: version, Address: "127.0.0.1",
		LoadBalancers: []events.LBConfig{{ID: "lb1", Listeners: []events.ListenerConfig{{
			ID: "l1", Protocol: "HTTP", Port: port, TimeoutMemberConnectMS: 1000, DrainTimeoutSeconds: 2,
			Pool: &events.PoolConfig{ID: "p1", Algorithm: l7.AlgRoundRobin, Members: ms, HealthMonitor: hm},
		}}}}}
}

func testKilledMember(t *testing.T, newDriver Factory) {
	d := open(t, newDriver)
	bs := backends(t, 3)
	bind, port := FreeBind(t)
	hooks := &fakeHooks{trig: make(chan struct{}, 1)}
	role := l7.NewRole(l7.Options{NodeID: "n1", Address: "127.0.0.1", Logger: QuietLogger()}, d, hooks)
	t.Cleanup(func() { _ = role.Close() })
	hm := &events.HealthCheckConfig{Type: "TCP", Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, Rise: 2, Fall: 2}
	cfg := nodeConfig(1, port, bs, nil, hm)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := role.Reconcile(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hooks.trig:
				if err := role.Reconcile(ctx, cfg); err != nil && ctx.Err() == nil {
					t.Errorf("reconcile: %v", err)
				}
			}
		}
	}()
	defer func() { cancel(); <-done }()

	load := StartLoad("http://"+bind+"/", 4, 5000, 30*time.Second)
	Eventually(t, 10*time.Second, func() bool { return bs[2].Count() > 10 })
	killed := time.Now()
	bs[2].Kill()
	Eventually(t, 10*time.Second, func() bool { _, ok := hooks.unhealthy("m3"); return ok })
	detect := time.Since(killed)
	if r, _ := hooks.unhealthy("m3"); r.LoadBalancerID != "lb1" || r.PoolID != "p1" || r.Port != bs[2].Port {
		t.Fatalf("health report %+v", r)
	}
	Eventually(t, 10*time.Second, func() bool {
		for _, m := range role.Desired(cfg).Listeners[0].Members {
			if m.ID == "m3" {
				return false
			}
		}
		return true
	})
	mid := counts(bs)
	time.Sleep(300 * time.Millisecond) // let traffic flow without m3
	ok, failed, first := load.Stop()
	t.Logf("m3 detected down %v after the kill (fall 2 × interval 100ms); %d requests ok, %d failed", detect, ok, failed)
	if failed > 0 {
		t.Fatalf("%d of %d requests failed around the kill; first: %s", failed, ok+failed, first)
	}
	if end := counts(bs); end[0] <= mid[0] || end[1] <= mid[1] {
		t.Fatalf("surviving members got no traffic: %v -> %v", mid, end)
	}
}

func testChangesUnderLoad(t *testing.T, newDriver Factory) {
	d := open(t, newDriver)
	bs := backends(t, 3)
	bind, _ := FreeBind(t)
	apply(t, d, listener(bind, members(bs)))
	load := StartLoad("http://"+bind+"/", 4, 20000, 60*time.Second)
	Eventually(t, 10*time.Second, func() bool { return load.ok.Load() > 20 })
	for i := 0; i < 20; i++ {
		l := listener(bind, members(bs, 1+i%3, 1+(i+1)%4, 2))
		switch i % 4 {
		case 1:
			l.Algorithm = l7.AlgLeastConn
		case 2:
			l.Members = l.Members[:2] // remove a member
		case 3:
			l.Algorithm = l7.AlgSourceIP
		}
		apply(t, d, l)
		time.Sleep(20 * time.Millisecond)
	}
	ok, failed, first := load.Stop()
	t.Logf("20 changes under load: %d requests ok, %d failed", ok, failed)
	if failed > 0 {
		t.Fatalf("%d of %d requests failed during 20 config changes; first: %s", failed, ok+failed, first)
	}
}

func testMetrics(t *testing.T, newDriver Factory) {
	d := open(t, newDriver)
	bs := backends(t, 2)
	bind, port := FreeBind(t)
	hooks := &fakeHooks{trig: make(chan struct{}, 1)}
	role := l7.NewRole(l7.Options{NodeID: "n1", Address: "127.0.0.1", AvailabilityZone: "az1", Logger: QuietLogger()}, d, hooks)
	t.Cleanup(func() { _ = role.Close() })
	if err := role.Reconcile(context.Background(), nodeConfig(1, port, bs, nil, nil)); err != nil {
		t.Fatal(err)
	}
	send(t, "http://"+bind+"/a", 10)
	send(t, "http://"+bind+"/b", 5)
	var reqs, lat, b2xx float64
	urls := map[string]float64{}
	Eventually(t, 10*time.Second, func() bool {
		for _, p := range role.Samples(time.Now()) {
			if p.Dimensions[events.DimListener] != "l1" {
				continue
			}
			if p.Dimensions[events.DimLoadBalancer] != "lb1" || p.Dimensions[events.DimPool] != "p1" || p.Dimensions[events.DimAvailabilityZone] != "az1" {
				t.Fatalf("dimensions %v", p.Dimensions)
			}
			switch p.Metric {
			case events.MetricRequestCount:
				reqs += p.Sum
			case events.MetricLatency:
				lat += p.Count
			case events.MetricHTTPCodeBackend2XX:
				b2xx += p.Sum
			case events.MetricURLRequestCount:
				urls[p.Dimensions[events.DimURL]] += p.Sum
			case events.MetricHealthyHostCount:
				if p.Sum != 2 {
					t.Fatalf("HealthyHostCount %v", p.Sum)
				}
			}
		}
		return reqs >= 15
	})
	if reqs != 15 || lat != 15 || b2xx != 15 || urls["/a"] != 10 || urls["/b"] != 5 {
		t.Fatalf("requests %v latency samples %v 2xx %v urls %v", reqs, lat, b2xx, urls)
	}
}

func testBusOutage(t *testing.T, newDriver Factory) {
	d := open(t, newDriver)
	bs := backends(t, 3)
	bind, port := FreeBind(t)
	srv := natstest.Start(t, "n1")
	admin := srv.Admin(t)
	kv := natstest.SetupBus(t, admin)
	natstest.PutConfig(t, kv, nodeConfig(1, port, bs, nil, nil), "n1")

	user, pass := runtime.AgentCredentials(natstest.Secret, "n1")
	agent, err := runtime.New(runtime.Config{NodeID: "n1", User: user, Password: pass, StateDir: t.TempDir(),
		HeartbeatInterval: 100 * time.Millisecond, SampleInterval: 200 * time.Millisecond, ResyncInterval: time.Second,
		NATSOptions: []nats.Option{srv.AgentOption()}, Logger: QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	role := l7.NewRole(l7.Options{NodeID: "n1", Address: "127.0.0.1", Logger: QuietLogger()}, d, agent)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = agent.Run(ctx, role)
	}()
	t.Cleanup(func() { cancel(); <-done; _ = role.Close() })

	Eventually(t, 20*time.Second, func() bool { return agent.AppliedVersion() == 1 })
	send(t, "http://"+bind+"/", 30)
	for i, c := range counts(bs) {
		if c == 0 {
			t.Fatalf("member %d got no traffic before the outage", i)
		}
	}

	srv.BlockAgents(true)
	srv.Stop()
	send(t, "http://"+bind+"/", 30) // the data plane does not need the bus

	srv.Restart() // same store dir: the bucket and v1 survive
	admin2 := srv.Admin(t)
	kv2 := natstest.SetupKV(t, admin2)
	natstest.PutConfig(t, kv2, nodeConfig(2, port, bs[:1], nil, nil), "n1")
	send(t, "http://"+bind+"/", 10) // still v1 while the agent cannot reach the bus
	srv.BlockAgents(false)
	Eventually(t, 30*time.Second, func() bool { return agent.AppliedVersion() == 2 })
	before := counts(bs)
	send(t, "http://"+bind+"/", 30)
	after := counts(bs)
	if after[0]-before[0] != 30 || after[1] != before[1] || after[2] != before[2] {
		t.Fatalf("after resync to v2 traffic went %v -> %v, want all on m1", before, after)
	}
}
