package l7

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/elbcloud/elb/agents/health"
	"github.com/elbcloud/elb/events"
)

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

// Options configure a Role.
type Options struct {
	NodeID           string
	AvailabilityZone string
	// Address is where listeners bind when the node config has no address
	// (default 0.0.0.0).
	Address string
	Logger  *slog.Logger
}

// Role is the tengine role: it implements runtime.Role.
type Role struct {
	opts    Options
	driver  Driver
	hooks   Hooks
	checker HealthChecker
	log     *slog.Logger

	mu    sync.Mutex
	hosts map[string]hostCount // by listener id, from the last reconcile
	dims  map[string]map[string]string
}

type hostCount struct{ healthy, unhealthy int }

type memberMeta struct {
	lb, listener, pool, member string
}

// NewRole returns the tengine role over driver. It owns a health checker
// whose changes are reported through hooks and trigger a reconcile.
func NewRole(opts Options, driver Driver, hooks Hooks) *Role {
	r := newRole(opts, driver, hooks, nil)
	r.checker = health.New(r.onHealth, r.log)
	return r
}

func newRole(opts Options, driver Driver, hooks Hooks, checker HealthChecker) *Role {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Role{opts: opts, driver: driver, hooks: hooks, checker: checker, log: opts.Logger.With("role", events.RoleTengine), hosts: map[string]hostCount{}}
}

// Name implements runtime.Role.
func (r *Role) Name() string { return events.RoleTengine }

// Driver implements runtime.Role.
func (r *Role) Driver() string { return r.driver.Name() }

// Close stops health checks and the driver.
func (r *Role) Close() error {
	r.checker.Close()
	return r.driver.Close()
}

func (r *Role) onHealth(c health.Change) {
	m, _ := c.Target.Meta.(memberMeta)
	r.hooks.ReportHealth(events.HealthReport{
		Time: c.Time.UTC(), LoadBalancerID: m.lb, ListenerID: m.listener, PoolID: m.pool, MemberID: m.member,
		Address: c.Target.Address, Port: c.Target.Port, Healthy: c.Healthy, Reason: c.Reason,
	})
	r.hooks.Trigger()
}

func healthKey(listener, pool, member string) string { return listener + "/" + pool + "/" + member }

// Reconcile implements runtime.Role: it computes the whole L7 desired state
// (health-filtered) and hands it to the driver, which applies the difference.
func (r *Role) Reconcile(ctx context.Context, cfg *events.NodeConfig) error {
	var targets []health.Target
	for _, lb := range cfg.LoadBalancers {
		for _, l := range lb.Listeners {
			if l.Protocol != "HTTP" || l.Pool == nil || l.Pool.HealthMonitor == nil {
				continue
			}
			for _, m := range l.Pool.Members {
				addr, port := m.Address, m.Port
				if m.MonitorAddress != "" {
					addr = m.MonitorAddress
				}
				if m.MonitorPort != 0 {
					port = m.MonitorPort
				}
				targets = append(targets, health.Target{
					Key: healthKey(l.ID, l.Pool.ID, m.ID), Address: addr, Port: port, Config: *l.Pool.HealthMonitor,
					Meta: memberMeta{lb: lb.ID, listener: l.ID, pool: l.Pool.ID, member: m.ID},
				})
			}
		}
	}
	r.checker.Set(targets)
	d, hosts, dims := r.desired(cfg)
	if err := r.driver.Apply(ctx, d); err != nil {
		return fmt.Errorf("apply L7 config version %d: %w", cfg.Version, err)
	}
	r.mu.Lock()
	r.hosts, r.dims = hosts, dims
	r.mu.Unlock()
	return nil
}

// Desired computes the driver state for cfg with the current health; it is
// exported for tests and tools.
func (r *Role) Desired(cfg *events.NodeConfig) Desired {
	d, _, _ := r.desired(cfg)
	return d
}

func (r *Role) desired(cfg *events.NodeConfig) (Desired, map[string]hostCount, map[string]map[string]string) {
	var d Desired
	hosts := map[string]hostCount{}
	dims := map[string]map[string]string{}
	if cfg.Draining {
		// Draining: no listeners; drivers finish open requests gracefully.
		return d, hosts, dims
	}
	host := cmp.Or(cfg.Address, r.opts.Address, "0.0.0.0")
	for _, lb := range cfg.LoadBalancers {
		for _, l := range lb.Listeners {
			if l.Protocol != "HTTP" {
				continue
			}
			dl := Listener{
				ID: l.ID, LoadBalancerID: lb.ID, Bind: net.JoinHostPort(host, strconv.Itoa(l.Port)),
				AllowedCIDRs: l.AllowedCIDRs, ConnectionLimit: l.ConnectionLimit,
				ConnectTimeout: ms(l.TimeoutMemberConnectMS, 5*time.Second),
				MemberTimeout:  ms(l.TimeoutMemberDataMS, 50*time.Second),
				ClientTimeout:  ms(l.TimeoutClientDataMS, 50*time.Second),
				DrainTimeout:   time.Duration(cmp.Or(l.DrainTimeoutSeconds, 30)) * time.Second,
			}
			for k, v := range l.InsertHeaders {
				on := v == "true" || v == "True" || v == "1"
				switch k {
				case "X-Forwarded-Port":
					dl.XForwardedPort = on
				case "X-Forwarded-Proto":
					dl.XForwardedProto = on
				}
			}
			dim := map[string]string{events.DimLoadBalancer: lb.ID, events.DimListener: l.ID}
			if r.opts.AvailabilityZone != "" {
				dim[events.DimAvailabilityZone] = r.opts.AvailabilityZone
			}
			var hc hostCount
			if p := l.Pool; p != nil {
				dim[events.DimPool] = p.ID
				dl.PoolID = p.ID
				dl.Algorithm = cmp.Or(p.Algorithm, AlgRoundRobin)
				if sp := p.SessionPersistence; sp != nil {
					dl.StickyType, dl.CookieName = sp.Type, sp.CookieName
				}
				var all, healthy []Member
				for _, m := range p.Members {
					ok, _ := r.checkerHealthy(healthKey(l.ID, p.ID, m.ID))
					if ok {
						hc.healthy++
					} else {
						hc.unhealthy++
					}
					if m.Weight == 0 { // drained by the operator
						continue
					}
					dm := Member{ID: m.ID, Address: m.Address, Port: m.Port, Weight: m.Weight, Backup: m.Backup}
					all = append(all, dm)
					if ok {
						healthy = append(healthy, dm)
					}
				}
				dl.Members = healthy
				if len(healthy) == 0 && p.FailOpen {
					// Every member is down: fail open, as AWS ALB does.
					dl.Members = all
				}
				slices.SortFunc(dl.Members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
			}
			hosts[l.ID] = hc
			dims[l.ID] = dim
			d.Listeners = append(d.Listeners, dl)
		}
	}
	slices.SortFunc(d.Listeners, func(a, b Listener) int { return cmp.Compare(a.ID, b.ID) })
	return d, hosts, dims
}

func (r *Role) checkerHealthy(key string) (bool, bool) {
	if r.checker == nil {
		return true, false
	}
	return r.checker.Healthy(key)
}

func ms(v int, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return time.Duration(v) * time.Millisecond
}

// Samples implements runtime.Role: per listener and pool, the AWS metrics of
// the interval.
func (r *Role) Samples(now time.Time) []events.SamplePoint {
	snap := r.driver.Stats()
	r.mu.Lock()
	hosts, dims := r.hosts, r.dims
	r.mu.Unlock()
	var pts []events.SamplePoint
	ids := make([]string, 0, len(dims))
	for id := range dims {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		dim := dims[id]
		s := snap.Listeners[id]
		if s == nil {
			s = &ListenerStats{ActiveConnections: -1}
		}
		counter := func(metric, unit string, n int) {
			p := events.SamplePoint{Metric: metric, Unit: unit, Dimensions: dim, Count: float64(n), Sum: float64(n)}
			if n > 0 {
				p.Min, p.Max = 1, 1
			}
			pts = append(pts, p)
		}
		gauge := func(metric, unit string, v float64) {
			pts = append(pts, events.SamplePoint{Metric: metric, Unit: unit, Dimensions: dim, Count: 1, Sum: v, Min: v, Max: v})
		}
		counter(events.MetricRequestCount, "Count", s.Requests)
		if s.Requests > 0 {
			pts = append(pts, events.SamplePoint{Metric: events.MetricLatency, Unit: "Seconds", Dimensions: dim,
				Count: float64(s.Requests), Sum: s.LatencySum, Min: s.LatencyMin, Max: s.LatMax, Values: s.Latencies})
			pts = append(pts, events.SamplePoint{Metric: events.MetricProcessedBytesIn, Unit: "Bytes", Dimensions: dim, Count: float64(s.Requests), Sum: float64(s.BytesIn)})
			pts = append(pts, events.SamplePoint{Metric: events.MetricProcessedBytesOut, Unit: "Bytes", Dimensions: dim, Count: float64(s.Requests), Sum: float64(s.BytesOut)})
		}
		counter(events.MetricHTTPCodeELB4XX, "Count", s.ELB4xx)
		counter(events.MetricHTTPCodeELB5XX, "Count", s.ELB5xx)
		counter(events.MetricHTTPCodeBackend2XX, "Count", s.Backend[0])
		counter(events.MetricHTTPCodeBackend3XX, "Count", s.Backend[1])
		counter(events.MetricHTTPCodeBackend4XX, "Count", s.Backend[2])
		counter(events.MetricHTTPCodeBackend5XX, "Count", s.Backend[3])
		counter(events.MetricBackendConnectionErrors, "Count", s.BackendConnErrors)
		counter(events.MetricSpilloverCount, "Count", s.Spillover)
		// Neither driver queues requests in front of members.
		gauge(events.MetricSurgeQueueLength, "Count", 0)
		if s.ActiveConnections >= 0 {
			gauge(events.MetricActiveConnectionCount, "Count", float64(s.ActiveConnections))
		}
		hc := hosts[id]
		gauge(events.MetricHealthyHostCount, "Count", float64(hc.healthy))
		gauge(events.MetricUnHealthyHostCount, "Count", float64(hc.unhealthy))
		pts = append(pts, topK(events.MetricClientIPRequestCount, events.DimClientIP, dim, s.ClientIPs)...)
		pts = append(pts, topK(events.MetricURLRequestCount, events.DimURL, dim, s.URLs)...)
	}
	if snap.NodeActiveConnections >= 0 {
		v := float64(snap.NodeActiveConnections)
		pts = append(pts, events.SamplePoint{Metric: events.MetricActiveConnectionCount, Unit: "Count",
			Dimensions: map[string]string{events.DimNode: r.opts.NodeID}, Count: 1, Sum: v, Min: v, Max: v})
	}
	return pts
}

func topK(metric, dimName string, base map[string]string, counts map[string]int) []events.SamplePoint {
	type kv struct {
		k string
		n int
	}
	all := make([]kv, 0, len(counts))
	for k, n := range counts {
		all = append(all, kv{k, n})
	}
	slices.SortFunc(all, func(a, b kv) int {
		if c := cmp.Compare(b.n, a.n); c != 0 {
			return c
		}
		return cmp.Compare(a.k, b.k)
	})
	if len(all) > events.TopK {
		all = all[:events.TopK]
	}
	out := make([]events.SamplePoint, 0, len(all))
	for _, e := range all {
		dim := make(map[string]string, len(base)+1)
		for k, v := range base {
			dim[k] = v
		}
		dim[dimName] = e.k
		out = append(out, events.SamplePoint{Metric: metric, Unit: "Count", Dimensions: dim, Count: float64(e.n), Sum: float64(e.n), Min: 1, Max: 1})
	}
	return out
}
