// Package health is the health checker shared by the agent roles: it probes
// targets (TCP connect, HTTP, UDP-CONNECT, PING) at an interval, runs a
// rise/fall state machine per target and notifies changes.
//
// A target starts healthy: a config change never pulls members out of
// rotation by itself; a failing member leaves after Fall failed probes, that
// is within Fall × Interval (+ Timeout) of failing.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
)

// Health check types.
const (
	TypeTCP        = "TCP"
	TypeHTTP       = "HTTP"
	TypePING       = "PING"
	TypeUDPConnect = "UDP-CONNECT"
)

// ErrBadExpectedCodes is returned for an unparsable expected_codes value.
var ErrBadExpectedCodes = errors.New("bad expected codes")

// ErrProbe wraps every failed probe.
var ErrProbe = errors.New("probe failed")

// Target is one endpoint to check. Key identifies it across Set calls; the
// rest describes where and how. Meta is carried through to Change untouched.
type Target struct {
	Key     string
	Address string
	Port    int
	Config  events.HealthCheckConfig
	Meta    any
}

// Change is a health transition of one target.
type Change struct {
	Target  Target
	Healthy bool
	Reason  string
	Time    time.Time
}

// Prober runs one probe. It is the test seam of the checker.
type Prober interface {
	Probe(ctx context.Context, t Target) error
}

// Checker runs the probes of a set of targets.
type Checker struct {
	prober Prober
	notify func(Change)
	log    *slog.Logger

	mu      sync.Mutex
	targets map[string]*probeState
	closed  bool
	wg      sync.WaitGroup
}

type probeState struct {
	target Target
	cancel context.CancelFunc

	mu sync.Mutex
	sm StateMachine
}

// New returns a checker that calls notify (from its own goroutines, one at a
// time per target) on every transition. PING falls back to a TCP connect on
// the target port: raw ICMP sockets need CAP_NET_RAW, which agents do not have
// in the single-machine mode.
func New(notify func(Change), log *slog.Logger) *Checker {
	return newChecker(NetProber{}, notify, log)
}

func newChecker(p Prober, notify func(Change), log *slog.Logger) *Checker {
	if log == nil {
		log = slog.Default()
	}
	if notify == nil {
		notify = func(Change) {}
	}
	return &Checker{prober: p, notify: notify, log: log, targets: map[string]*probeState{}}
}

// Set replaces the set of targets: new ones start probing (healthy), removed
// ones stop, changed ones restart with their state kept.
func (c *Checker) Set(targets []Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	want := make(map[string]Target, len(targets))
	for _, t := range targets {
		want[t.Key] = t
	}
	for k, ps := range c.targets {
		nt, ok := want[k]
		if ok && sameProbe(ps.target, nt) {
			ps.mu.Lock()
			ps.target.Meta = nt.Meta
			ps.mu.Unlock()
			continue
		}
		ps.cancel()
		if !ok {
			delete(c.targets, k)
		}
	}
	for k, t := range want {
		old, ok := c.targets[k]
		if ok && sameProbe(old.target, t) {
			continue
		}
		ps := &probeState{target: t, sm: NewStateMachine(t.Config.Rise, t.Config.Fall)}
		if ok {
			ps.sm.healthy = old.sm.Healthy()
		}
		ctx, cancel := context.WithCancel(context.Background())
		ps.cancel = cancel
		c.targets[k] = ps
		c.wg.Add(1)
		go c.run(ctx, ps)
	}
}

func sameProbe(a, b Target) bool {
	return a.Address == b.Address && a.Port == b.Port && a.Config == b.Config
}

// Healthy reports a target's state; known is false for an unknown key.
func (c *Checker) Healthy(key string) (healthy, known bool) {
	c.mu.Lock()
	ps, ok := c.targets[key]
	c.mu.Unlock()
	if !ok {
		return true, false
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.sm.Healthy(), true
}

// Close stops every probe and waits for them.
func (c *Checker) Close() {
	c.mu.Lock()
	c.closed = true
	for k, ps := range c.targets {
		ps.cancel()
		delete(c.targets, k)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *Checker) run(ctx context.Context, ps *probeState) {
	defer c.wg.Done()
	ps.mu.Lock()
	t := ps.target // Set may replace Meta concurrently; the probe fields never change
	ps.mu.Unlock()
	interval := t.Config.Interval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	timeout := t.Config.Timeout
	if timeout <= 0 || timeout > interval {
		timeout = interval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.prober.Probe(pctx, t)
		cancel()
		if ctx.Err() != nil {
			return
		}
		ps.mu.Lock()
		changed := ps.sm.Observe(err == nil)
		healthy := ps.sm.Healthy()
		target := ps.target
		ps.mu.Unlock()
		if changed {
			reason := "probe succeeded"
			if err != nil {
				reason = err.Error()
			}
			c.log.Info("health changed", "target", t.Key, "address", net.JoinHostPort(t.Address, strconv.Itoa(t.Port)), "healthy", healthy, "reason", reason)
			c.notify(Change{Target: target, Healthy: healthy, Reason: reason, Time: time.Now()})
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// StateMachine is the rise/fall counter of one target. The zero value is not
// usable; use NewStateMachine.
type StateMachine struct {
	rise, fall int
	healthy    bool
	streak     int // consecutive results contradicting the current state
}

// NewStateMachine returns a healthy state machine that goes down after fall
// consecutive failures and up after rise consecutive successes.
func NewStateMachine(rise, fall int) StateMachine {
	if rise < 1 {
		rise = 1
	}
	if fall < 1 {
		fall = 1
	}
	return StateMachine{rise: rise, fall: fall, healthy: true}
}

// Healthy is the current state.
func (s *StateMachine) Healthy() bool { return s.healthy }

// Observe records one probe result and reports whether the state changed.
func (s *StateMachine) Observe(ok bool) bool {
	if ok == s.healthy {
		s.streak = 0
		return false
	}
	s.streak++
	need := s.fall
	if !s.healthy {
		need = s.rise
	}
	if s.streak >= need {
		s.healthy = ok
		s.streak = 0
		return true
	}
	return false
}

// NetProber probes over the network.
type NetProber struct{}

var probeHTTPClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// Probe implements Prober. The context carries the timeout.
func (NetProber) Probe(ctx context.Context, t Target) error {
	addr := net.JoinHostPort(t.Address, strconv.Itoa(t.Port))
	switch strings.ToUpper(t.Config.Type) {
	case TypeHTTP, "HTTPS":
		return probeHTTP(ctx, addr, t.Config)
	case TypeUDPConnect:
		return probeUDP(ctx, addr)
	default: // TCP, PING (falls back to TCP connect), unknown types
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("%w: tcp connect %s: %w", ErrProbe, addr, err)
		}
		return conn.Close()
	}
}

func probeHTTP(ctx context.Context, addr string, hc events.HealthCheckConfig) error {
	method := hc.HTTPMethod
	if method == "" {
		method = http.MethodGet
	}
	path := hc.URLPath
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	codes, err := ParseExpectedCodes(hc.ExpectedCodes)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProbe, err)
	}
	req.Header.Set("User-Agent", "elb-health-check")
	resp, err := probeHTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: http %s %s: %w", ErrProbe, method, addr+path, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if !codes.Match(resp.StatusCode) {
		return fmt.Errorf("%w: http %s %s: status %d not in %s", ErrProbe, method, addr+path, resp.StatusCode, hc.ExpectedCodes)
	}
	return nil
}

// probeUDP is best effort: it sends a datagram and treats an ICMP port
// unreachable (ECONNREFUSED on a connected socket) as down and silence as up.
func probeUDP(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return fmt.Errorf("%w: udp %s: %w", ErrProbe, addr, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Second)
	}
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte{0}); err != nil {
		return fmt.Errorf("%w: udp %s: %w", ErrProbe, addr, err)
	}
	buf := make([]byte, 1)
	if _, err := conn.Read(buf); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return fmt.Errorf("%w: udp %s: %w", ErrProbe, addr, err)
	}
	return nil
}

// Codes is a parsed expected_codes value.
type Codes [][2]int

// ParseExpectedCodes parses "200", "200-204", "200,202" (and mixtures). The
// empty string means 200.
func ParseExpectedCodes(s string) (Codes, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Codes{{200, 200}}, nil
	}
	var out Codes
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil {
			return nil, fmt.Errorf("%w: %q", ErrBadExpectedCodes, s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
				return nil, fmt.Errorf("%w: %q", ErrBadExpectedCodes, s)
			}
		}
		if a < 100 || b > 599 || a > b {
			return nil, fmt.Errorf("%w: %q", ErrBadExpectedCodes, s)
		}
		out = append(out, [2]int{a, b})
	}
	return out, nil
}

// Match reports whether code is expected.
func (c Codes) Match(code int) bool {
	for _, r := range c {
		if code >= r[0] && code <= r[1] {
			return true
		}
	}
	return false
}
