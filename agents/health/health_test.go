package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
)

func TestStateMachineGoesDownAfterFallFailuresAndUpAfterRiseSuccesses(t *testing.T) {
	sm := NewStateMachine(2, 3)
	steps := []struct {
		ok      bool
		changed bool
		healthy bool
	}{
		{false, false, true}, {false, false, true}, {true, false, true}, // streak reset
		{false, false, true}, {false, false, true}, {false, true, false},
		{true, false, false}, {false, false, false}, {true, false, false}, {true, true, true},
	}
	for i, s := range steps {
		if got := sm.Observe(s.ok); got != s.changed || sm.Healthy() != s.healthy {
			t.Fatalf("step %d: changed=%v healthy=%v, want %v %v", i, got, sm.Healthy(), s.changed, s.healthy)
		}
	}
}

func TestParseExpectedCodes(t *testing.T) {
	cases := []struct {
		in      string
		match   []int
		nomatch []int
		err     bool
	}{
		{in: "", match: []int{200}, nomatch: []int{201}},
		{in: "200", match: []int{200}, nomatch: []int{204, 500}},
		{in: "200-204", match: []int{200, 202, 204}, nomatch: []int{205, 199}},
		{in: "200,202", match: []int{200, 202}, nomatch: []int{201}},
		{in: "200, 301-302", match: []int{200, 301, 302}, nomatch: []int{303}},
		{in: "abc", err: true},
		{in: "204-200", err: true},
		{in: "99", err: true},
	}
	for _, c := range cases {
		codes, err := ParseExpectedCodes(c.in)
		if c.err {
			if !errors.Is(err, ErrBadExpectedCodes) {
				t.Errorf("%q: err %v, want ErrBadExpectedCodes", c.in, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		for _, m := range c.match {
			if !codes.Match(m) {
				t.Errorf("%q should match %d", c.in, m)
			}
		}
		for _, m := range c.nomatch {
			if codes.Match(m) {
				t.Errorf("%q should not match %d", c.in, m)
			}
		}
	}
}

type recorder struct {
	mu      sync.Mutex
	changes []Change
}

func (r *recorder) notify(c Change) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
}

func (r *recorder) last(key string) (Change, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	var last Change
	for _, c := range r.changes {
		if c.Target.Key == key {
			last = c
			n++
		}
	}
	return last, n
}

func eventually(t *testing.T, timeout time.Duration, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return h, port
}

func fastConfig(typ string) events.HealthCheckConfig {
	return events.HealthCheckConfig{Type: typ, Interval: 20 * time.Millisecond, Timeout: 200 * time.Millisecond, Rise: 2, Fall: 2}
}

func TestTCPCheckMarksAClosedListenerDownAndARestartedOneUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	h, p := hostPort(t, addr)
	rec := &recorder{}
	c := New(rec.notify, nil)
	defer c.Close()
	c.Set([]Target{{Key: "m1", Address: h, Port: p, Config: fastConfig(TypeTCP), Meta: "meta"}})
	if healthy, known := c.Healthy("m1"); !healthy || !known {
		t.Fatalf("new target should start healthy, got %v %v", healthy, known)
	}
	ln.Close()
	eventually(t, 5*time.Second, func() bool { ch, _ := rec.last("m1"); return ch.Target.Key == "m1" && !ch.Healthy })
	if healthy, _ := c.Healthy("m1"); healthy {
		t.Fatal("checker still reports healthy")
	}
	if ch, _ := rec.last("m1"); ch.Target.Meta != "meta" {
		t.Fatalf("meta not carried: %v", ch.Target.Meta)
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot rebind %s: %v", addr, err)
	}
	defer ln2.Close()
	go func() {
		for {
			c, err := ln2.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	eventually(t, 5*time.Second, func() bool { ch, _ := rec.last("m1"); return ch.Healthy })
}

func TestHTTPCheckUsesMethodPathAndExpectedCodes(t *testing.T) {
	var mu sync.Mutex
	status := http.StatusOK
	var gotMethod, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		gotMethod, gotPath = r.Method, r.URL.Path
		w.WriteHeader(status)
	}))
	defer srv.Close()
	h, p := hostPort(t, srv.Listener.Addr().String())
	cfg := fastConfig(TypeHTTP)
	cfg.HTTPMethod = "HEAD"
	cfg.URLPath = "/healthz"
	cfg.ExpectedCodes = "200-204"
	rec := &recorder{}
	c := New(rec.notify, nil)
	defer c.Close()
	c.Set([]Target{{Key: "web", Address: h, Port: p, Config: cfg}})
	eventually(t, 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return gotMethod == "HEAD" && gotPath == "/healthz"
	})
	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	eventually(t, 5*time.Second, func() bool { ch, n := rec.last("web"); return n == 1 && !ch.Healthy })
	mu.Lock()
	status = http.StatusNoContent
	mu.Unlock()
	eventually(t, 5*time.Second, func() bool { ch, n := rec.last("web"); return n == 2 && ch.Healthy })
}

func TestSetRemovesTargetsAndKeepsStateOfUnchangedOnes(t *testing.T) {
	fp := &fakeProber{fail: map[string]bool{"a": true}}
	rec := &recorder{}
	c := newChecker(fp, rec.notify, nil)
	defer c.Close()
	cfg := fastConfig(TypeTCP)
	c.Set([]Target{{Key: "a", Address: "127.0.0.1", Port: 1, Config: cfg}, {Key: "b", Address: "127.0.0.1", Port: 2, Config: cfg}})
	eventually(t, 5*time.Second, func() bool { h, _ := c.Healthy("a"); return !h })
	c.Set([]Target{{Key: "a", Address: "127.0.0.1", Port: 1, Config: cfg}})
	if _, known := c.Healthy("b"); known {
		t.Fatal("b should be gone")
	}
	if h, _ := c.Healthy("a"); h {
		t.Fatal("a lost its state on an unchanged Set")
	}
	// A changed probe config restarts probing but keeps the state.
	cfg2 := cfg
	cfg2.Fall = 5
	c.Set([]Target{{Key: "a", Address: "127.0.0.1", Port: 1, Config: cfg2}})
	if h, _ := c.Healthy("a"); h {
		t.Fatal("a lost its state on a changed Set")
	}
}

type fakeProber struct {
	mu   sync.Mutex
	fail map[string]bool
}

func (f *fakeProber) Probe(ctx context.Context, t Target) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[t.Key] {
		return ErrProbe
	}
	return nil
}

func TestUDPCheckSeesRefusedPortAsDown(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h, p := hostPort(t, pc.LocalAddr().String())
	pc.Close() // nothing listens now: the kernel answers port unreachable
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := (NetProber{}).Probe(ctx, Target{Address: h, Port: p, Config: events.HealthCheckConfig{Type: TypeUDPConnect}}); err == nil {
		t.Fatal("closed UDP port should be down")
	}
	pc2, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc2.Close()
	h, p = hostPort(t, pc2.LocalAddr().String())
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := (NetProber{}).Probe(ctx2, Target{Address: h, Port: p, Config: events.HealthCheckConfig{Type: TypeUDPConnect}}); err != nil {
		t.Fatalf("silent UDP listener should count as up: %v", err)
	}
}
