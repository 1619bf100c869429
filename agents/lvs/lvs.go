// Package lvs is the agent's `lvs` role: it turns the node's desired config
// (events.NodeConfig, role "lvs") into the L4 desired state, keeps every
// target health-checked, takes failing targets out of rotation (weight 0,
// then removal after draining) and reports per-VIP metrics.
//
// It implements runtime.Role; the L4 driver (ipvs, nftables or userspace,
// see agents/l4/auto) is injected.
package lvs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elbcloud/elb/agents/health"
	"github.com/elbcloud/elb/agents/l4"
	"github.com/elbcloud/elb/agents/vrrp"
	"github.com/elbcloud/elb/events"
)

// ErrNotLVS wraps a config for another role.
var ErrNotLVS = errors.New("config is not for the lvs role")

// DimTarget is the dimension of per-destination points ("addr:port"). The
// stats service does not accept it yet, so those points are opt-in
// (Options.DestinationMetrics).
const DimTarget = "Target"

// Hooks are the runtime callbacks the role uses (runtime.Agent implements
// them).
type Hooks interface {
	ReportHealth(events.HealthReport)
	Trigger()
}

// HealthChecker is the part of health.Checker the role needs.
type HealthChecker interface {
	Set([]health.Target)
	Healthy(key string) (healthy, known bool)
	Close()
}

// VRRP is the part of vrrp.Manager the role drives.
type VRRP interface {
	Apply(vrrp.Config) error
	Close() error
}

// Options configure the role.
type Options struct {
	NodeID           string
	AvailabilityZone string
	// DrainTimeout is how long a failing or removed target stays at weight
	// 0 before it is removed (default 30 s; a listener's
	// drain_timeout_seconds overrides it).
	DrainTimeout time.Duration
	// DefaultCheck checks the targets of listeners without a health monitor
	// of their own (HTTP listeners, whose targets are tengine nodes; TCP
	// listeners without a monitor). UDP listeners without a monitor are not
	// checked. Default: TCP connect every 2 s, timeout 1 s, rise 2, fall 2.
	DefaultCheck events.HealthCheckConfig
	// DefaultForward applies when a listener names no forwarding method
	// (default DR, the LVS norm; NAT where DR cannot be used).
	DefaultForward l4.Forward
	// DestinationMetrics adds per-destination points (dimension Target).
	DestinationMetrics bool
	Logger             *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Role is the lvs role.
type Role struct {
	opts    Options
	driver  l4.Driver
	hooks   Hooks
	checker HealthChecker
	log     *slog.Logger

	mu sync.Mutex
	// draining holds targets on their way out: weight 0 until the deadline.
	draining map[destKey]drain
	// last is the previous desired state by destination, to notice removals.
	last map[destKey]destInfo
	// meta describes each service for metrics.
	meta  map[l4.Key]svcMeta
	hosts map[l4.Key][2]int // healthy, unhealthy
	prev  map[l4.Key]l4.Stats
	prevD map[destKey]l4.Stats
	// targets is what the checker was last given.
	targets []health.Target

	vrrp     VRRP
	vrrpPair vrrp.Pair
}

// WithVRRP makes every reconcile also render the node's VIPs into
// keepalived (through m, usually a *vrrp.Manager) as one instance of pair.
// Call before the first Reconcile; Close closes m.
func (r *Role) WithVRRP(m VRRP, pair vrrp.Pair) *Role {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.vrrp, r.vrrpPair = m, pair
	return r
}

type destKey struct {
	svc l4.Key
	dst netip.AddrPort
}

type destInfo struct{ dst l4.Destination }

type drain struct {
	until time.Time
	dst   l4.Destination
}

type svcMeta struct{ lb, listener string }

type targetMeta struct {
	lb, listener, target string
}

// New returns the lvs role over driver; its health checker reports changes
// through hooks and triggers a reconcile.
func New(opts Options, driver l4.Driver, hooks Hooks) *Role {
	r := newRole(opts, driver, hooks, nil)
	r.checker = health.New(r.onHealth, r.log)
	return r
}

func newRole(opts Options, driver l4.Driver, hooks Hooks, checker HealthChecker) *Role {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.DefaultCheck.Type == "" {
		opts.DefaultCheck = events.HealthCheckConfig{Type: health.TypeTCP, Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 2}
	}
	if opts.DefaultForward == "" {
		opts.DefaultForward = l4.DR
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Role{opts: opts, driver: driver, hooks: hooks, checker: checker,
		log:      opts.Logger.With("role", events.RoleLVS, "node", opts.NodeID),
		draining: map[destKey]drain{}, last: map[destKey]destInfo{}, meta: map[l4.Key]svcMeta{},
		hosts: map[l4.Key][2]int{}, prev: map[l4.Key]l4.Stats{}, prevD: map[destKey]l4.Stats{}}
}

// Name implements runtime.Role.
func (r *Role) Name() string { return events.RoleLVS }

// Driver implements runtime.Role.
func (r *Role) Driver() string { return r.driver.Name() }

// Close stops the health checks and closes the driver (kernel drivers leave
// the data plane programmed).
func (r *Role) Close() error {
	r.checker.Close()
	var errs []error
	r.mu.Lock()
	m := r.vrrp
	r.mu.Unlock()
	if m != nil {
		errs = append(errs, m.Close())
	}
	return errors.Join(append(errs, r.driver.Close())...)
}

func (r *Role) onHealth(c health.Change) {
	m, _ := c.Target.Meta.(targetMeta)
	if r.hooks == nil {
		return
	}
	r.hooks.ReportHealth(events.HealthReport{
		NodeID: r.opts.NodeID, Time: c.Time.UTC(), LoadBalancerID: m.lb, ListenerID: m.listener, MemberID: m.target,
		Address: c.Target.Address, Port: c.Target.Port, Healthy: c.Healthy, Reason: c.Reason,
	})
	r.hooks.Trigger()
}

func healthKey(listener string, t events.Target) string {
	return listener + "/" + cmp.Or(t.ID, t.Address+":"+strconv.Itoa(t.Port))
}

// Reconcile implements runtime.Role.
func (r *Role) Reconcile(ctx context.Context, cfg *events.NodeConfig) error {
	if cfg.Role != events.RoleLVS {
		return fmt.Errorf("%w: role %q", ErrNotLVS, cfg.Role)
	}
	targets := Targets(cfg, r.opts.DefaultCheck)
	r.mu.Lock()
	changed := !slices.Equal(targets, r.targets)
	r.targets = targets
	r.mu.Unlock()
	if changed {
		// Only on change: a periodic resync must not restart the probes.
		r.checker.Set(targets)
	}
	st, err := r.Desired(cfg)
	if err != nil {
		return fmt.Errorf("lvs config version %d: %w", cfg.Version, err)
	}
	if err := r.driver.Apply(ctx, st); err != nil {
		return fmt.Errorf("apply lvs config version %d: %w", cfg.Version, err)
	}
	r.mu.Lock()
	m, pair := r.vrrp, r.vrrpPair
	r.mu.Unlock()
	if m != nil {
		vcfg, err := vrrp.ForNode(cfg, pair)
		if err == nil {
			err = m.Apply(vcfg)
		}
		if err != nil {
			return fmt.Errorf("vrrp for lvs config version %d: %w", cfg.Version, err)
		}
	}
	return nil
}

// Targets lists the health checks of cfg.
func Targets(cfg *events.NodeConfig, def events.HealthCheckConfig) []health.Target {
	var out []health.Target
	for _, lb := range cfg.LoadBalancers {
		for _, l := range lb.Listeners {
			hc, ok := checkOf(l, def)
			if !ok {
				continue
			}
			for _, t := range l.L4Targets {
				addr, port := t.Address, t.Port
				if l.Pool != nil {
					for _, m := range l.Pool.Members {
						if m.ID == t.ID && m.ID != "" {
							addr, port = cmp.Or(m.MonitorAddress, addr), cmp.Or(m.MonitorPort, port)
						}
					}
				}
				out = append(out, health.Target{Key: healthKey(l.ID, t), Address: addr, Port: port, Config: hc,
					Meta: targetMeta{lb: lb.ID, listener: l.ID, target: t.ID}})
			}
		}
	}
	return out
}

func checkOf(l events.ListenerConfig, def events.HealthCheckConfig) (events.HealthCheckConfig, bool) {
	if l.Protocol != "HTTP" && l.Pool != nil && l.Pool.HealthMonitor != nil {
		return *l.Pool.HealthMonitor, true
	}
	if l.Protocol == "UDP" {
		return events.HealthCheckConfig{}, false
	}
	return def, true
}

// Scheduler maps a listener to an IPVS scheduler: its own, else from the
// pool's algorithm, else wrr.
func Scheduler(l events.ListenerConfig) string {
	if s := strings.ToLower(l.Scheduler); s != "" {
		return s
	}
	if l.Pool != nil {
		switch l.Pool.Algorithm {
		case "LEAST_CONNECTIONS":
			return l4.WLC
		case "SOURCE_IP":
			return l4.SH
		}
	}
	return l4.WRR
}

// Desired computes the L4 state for cfg with the current health: healthy
// targets at their weight, failing ones at weight 0 until the drain timeout,
// then gone. Targets removed from the config drain the same way. When every
// target of a pool with fail_open fails, they all stay in.
func (r *Role) Desired(cfg *events.NodeConfig) (l4.State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	var st l4.State
	var errs []error
	cur := map[destKey]destInfo{}
	failing := map[destKey]bool{}
	meta := map[l4.Key]svcMeta{}
	hosts := map[l4.Key][2]int{}
	var nextDeadline time.Time
	if cfg.Draining {
		cfg = &events.NodeConfig{NodeID: cfg.NodeID, Role: cfg.Role}
	}
	for _, lb := range cfg.LoadBalancers {
		vip, err := netip.ParseAddr(lb.VIP)
		if err != nil {
			errs = append(errs, fmt.Errorf("lb %s: vip %q: %w", lb.ID, lb.VIP, err))
			continue
		}
		for _, l := range lb.Listeners {
			proto := l4.TCP
			if l.Protocol == "UDP" {
				proto = l4.UDP
			}
			if l.Port < 1 || l.Port > 65535 {
				errs = append(errs, fmt.Errorf("listener %s: port %d", l.ID, l.Port))
				continue
			}
			s := l4.Service{VIP: vip, Port: uint16(l.Port), Protocol: proto, Scheduler: Scheduler(l),
				Forward:      l4.Forward(strings.ToLower(cmp.Or(l.ForwardMethod, string(r.opts.DefaultForward)))),
				Destinations: []l4.Destination{}}
			if l.PersistenceTimeout > 0 {
				s.Persistence = uint32(l.PersistenceTimeout)
			}
			drainFor := r.opts.DrainTimeout
			if l.DrainTimeoutSeconds > 0 {
				drainFor = time.Duration(l.DrainTimeoutSeconds) * time.Second
			}
			failOpen := l.Pool != nil && l.Pool.FailOpen
			type cand struct {
				d       l4.Destination
				healthy bool
			}
			var cands []cand
			anyHealthy := false
			for _, t := range l.L4Targets {
				a, err := netip.ParseAddr(t.Address)
				if err != nil || t.Port < 1 || t.Port > 65535 {
					errs = append(errs, fmt.Errorf("listener %s target %s: bad address %s:%d", l.ID, t.ID, t.Address, t.Port))
					continue
				}
				healthy, _ := r.checker.Healthy(healthKey(l.ID, t))
				anyHealthy = anyHealthy || healthy
				cands = append(cands, cand{d: l4.Destination{Addr: a, Port: uint16(t.Port), Weight: max(0, t.Weight)}, healthy: healthy})
			}
			h := [2]int{}
			seen := map[netip.AddrPort]bool{}
			for _, c := range cands {
				k := destKey{svc: s.Key(), dst: c.d.AddrPort()}
				if seen[k.dst] {
					continue
				}
				seen[k.dst] = true
				if c.healthy {
					h[0]++
				} else {
					h[1]++
				}
				if c.healthy || (failOpen && !anyHealthy) {
					delete(r.draining, k)
					s.Destinations = append(s.Destinations, c.d)
					cur[k] = destInfo{dst: c.d}
					continue
				}
				failing[k] = true
				dr, ok := r.draining[k]
				if !ok {
					dr = drain{until: now.Add(drainFor), dst: c.d}
					r.draining[k] = dr
					r.log.Info("target unhealthy: draining", "service", s.Key().String(), "target", k.dst.String(), "until", dr.until)
				}
				if now.Before(dr.until) {
					d := c.d
					d.Weight = 0
					s.Destinations = append(s.Destinations, d)
					cur[k] = destInfo{dst: d}
					nextDeadline = earliest(nextDeadline, dr.until)
				}
			}
			hosts[s.Key()] = h
			meta[s.Key()] = svcMeta{lb: lb.ID, listener: l.ID}
			st.Services = append(st.Services, s)
		}
	}
	// Targets that left the config drain too.
	byKey := map[l4.Key]int{}
	for i, s := range st.Services {
		byKey[s.Key()] = i
	}
	for k, info := range r.last {
		if _, still := cur[k]; still {
			continue
		}
		i, svcKept := byKey[k.svc]
		if !svcKept {
			continue // a removed listener goes at once: its VIP port is gone
		}
		dr, ok := r.draining[k]
		if !ok {
			dr = drain{until: now.Add(r.opts.DrainTimeout), dst: info.dst}
			r.draining[k] = dr
		}
		if now.Before(dr.until) {
			d := info.dst
			d.Weight = 0
			st.Services[i].Destinations = append(st.Services[i].Destinations, d)
			cur[k] = destInfo{dst: d}
			nextDeadline = earliest(nextDeadline, dr.until)
		}
	}
	for k := range r.draining {
		// Keep the record of a target that is still configured but failing,
		// even after its drain ended, so that it does not drain again.
		if _, ok := cur[k]; !ok && !failing[k] {
			delete(r.draining, k)
		}
	}
	r.last, r.meta, r.hosts = cur, meta, hosts
	if !nextDeadline.IsZero() && r.hooks != nil {
		// Come back when the first drain ends, to remove the target.
		time.AfterFunc(nextDeadline.Sub(now)+10*time.Millisecond, r.hooks.Trigger)
	}
	if err := errors.Join(errs...); err != nil {
		return l4.State{}, err
	}
	return st, st.Validate()
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// Samples implements runtime.Role: per listener (VIP:port) active and new
// connections, bytes in and out, healthy and unhealthy host counts; per
// destination the same counters when enabled. Counters are differences to
// the previous call.
func (r *Role) Samples(now time.Time) []events.SamplePoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	var pts []events.SamplePoint
	gauge := func(metric, unit string, v float64, dims map[string]string) {
		pts = append(pts, events.SamplePoint{Metric: metric, Unit: unit, Dimensions: dims, Count: 1, Sum: v, Min: v, Max: v})
	}
	dimsOf := func(k l4.Key) map[string]string {
		m := r.meta[k]
		d := map[string]string{events.DimLoadBalancer: m.lb, events.DimListener: m.listener, events.DimNode: r.opts.NodeID}
		if r.opts.AvailabilityZone != "" {
			d[events.DimAvailabilityZone] = r.opts.AvailabilityZone
		}
		return d
	}
	for k, h := range r.hosts {
		gauge(events.MetricHealthyHostCount, "Count", float64(h[0]), dimsOf(k))
		gauge(events.MetricUnHealthyHostCount, "Count", float64(h[1]), dimsOf(k))
	}
	sr, ok := r.driver.(l4.StatsReader)
	if !ok {
		return pts
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stats, err := sr.Stats(ctx)
	if err != nil {
		r.log.Warn("read l4 stats", "err", err)
		return pts
	}
	delta := func(now, prev uint64) float64 {
		if now < prev { // counter reset (service re-created)
			return float64(now)
		}
		return float64(now - prev)
	}
	counters := func(s, p l4.Stats, dims map[string]string) {
		gauge(events.MetricActiveConnectionCount, "Count", float64(s.Active), dims)
		gauge(events.MetricNewConnectionCount, "Count", delta(s.Connections, p.Connections), dims)
		gauge(events.MetricProcessedBytesIn, "Bytes", delta(s.BytesIn, p.BytesIn), dims)
		gauge(events.MetricProcessedBytesOut, "Bytes", delta(s.BytesOut, p.BytesOut), dims)
	}
	prev, prevD := map[l4.Key]l4.Stats{}, map[destKey]l4.Stats{}
	for _, ss := range stats {
		if _, known := r.meta[ss.Key]; !known {
			continue
		}
		counters(ss.Total, r.prev[ss.Key], dimsOf(ss.Key))
		prev[ss.Key] = ss.Total
		for ap, ds := range ss.Destinations {
			k := destKey{svc: ss.Key, dst: ap}
			if r.opts.DestinationMetrics {
				dims := dimsOf(ss.Key)
				dims[DimTarget] = ap.String()
				counters(ds, r.prevD[k], dims)
			}
			prevD[k] = ds
		}
	}
	r.prev, r.prevD = prev, prevD
	return pts
}
