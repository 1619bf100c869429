// Package app is the alarm service's application layer. It keeps what the
// rules look at (series of sample values, last heartbeats, real-server
// health, raised alarms), evaluates the rules with domain.Evaluate, appends
// AlarmRaised / AlarmResolved on the alarm aggregates with optimistic
// concurrency, and turns those events into notifications.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/alarm/domain"
)

// Actor is the actor recorded on the alarm service's events.
const Actor = "alarm"

// NotifyTimeout bounds one delivery of a notification to every channel.
const NotifyTimeout = 20 * time.Second

const (
	maxAttempts = 5
	// seriesTTL drops the period state of series that stopped reporting.
	seriesTTL = time.Hour
)

// ErrInvalidInput is wrapped for bus messages that cannot be used.
var ErrInvalidInput = errors.New("invalid alarm input")

// Store is the part of the event store the service uses.
type Store interface {
	Load(ctx context.Context, aggType, aggID string) ([]events.Event, uint64, error)
	Append(ctx context.Context, aggType, aggID string, expected uint64, commandID string, evs ...events.Envelope) (eventstore.AppendResult, error)
}

// Notifier delivers a notification on one channel.
type Notifier interface {
	Name() string
	Notify(ctx context.Context, n domain.Notification) error
}

// Options configure New.
type Options struct {
	// Rules in force (normalized by New); disabled rules are skipped.
	Rules     []domain.Rule
	Silences  []domain.Silence
	Notifiers []Notifier
	Clock     func() time.Time
	Logger    *slog.Logger
	Metrics   *Metrics
}

type raisedAlarm struct {
	rule     string
	resource string
	dims     map[string]string
}

type series struct {
	domain.Series
	at time.Time
}

// realServer is one target's health as every checking node sees it: it is
// unhealthy while any node reports it unhealthy.
type realServer struct {
	dims   map[string]string
	byNode map[string]bool // node → unhealthy
	reason string
}

func (rs *realServer) unhealthy() bool {
	for _, u := range rs.byNode {
		if u {
			return true
		}
	}
	return false
}

type transition struct {
	verdict  domain.Verdict
	rule     domain.Rule
	resource string
	dims     map[string]string
	value    float64
	message  string
}

// Service is the alarm service. Its methods are safe for concurrent use.
type Service struct {
	store     Store
	rules     []domain.Rule
	byName    map[string]domain.Rule
	notifiers []Notifier
	clock     func() time.Time
	log       *slog.Logger
	metrics   *Metrics

	mu       sync.Mutex
	silences []domain.Silence
	raised   map[string]raisedAlarm
	series   map[string]*series
	seen     map[string]time.Time // node → last heartbeat, on the clock
	gone     map[string]time.Time // node → when it was deleted
	servers  map[string]*realServer
}

// New returns the service.
func New(store Store, o Options) (*Service, error) {
	s := &Service{store: store, byName: map[string]domain.Rule{}, notifiers: o.Notifiers, clock: o.Clock, log: o.Logger,
		metrics: o.Metrics, silences: append([]domain.Silence(nil), o.Silences...),
		raised: map[string]raisedAlarm{}, series: map[string]*series{}, seen: map[string]time.Time{},
		gone: map[string]time.Time{}, servers: map[string]*realServer{}}
	for _, r := range o.Rules {
		if err := r.Validate(); err != nil {
			return nil, err
		}
		if _, dup := s.byName[r.Name]; dup {
			return nil, fmt.Errorf("%w %q: defined twice", domain.ErrInvalidRule, r.Name)
		}
		r = r.Normalized()
		s.byName[r.Name] = r
		if !r.Disabled {
			s.rules = append(s.rules, r)
		}
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	return s, nil
}

// AddSilence adds a silence at run time.
func (s *Service) AddSilence(sil domain.Silence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silences = append(s.silences, sil)
}

// Raised lists the ids of the alarms currently raised.
func (s *Service) Raised() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.raised))
	for id := range s.raised {
		out = append(out, id)
	}
	return out
}

// ApplyEvent folds one event into the read model: alarm aggregates (what is
// raised) and load balancer aggregates (real-server health, deleted nodes).
func (s *Service) ApplyEvent(e events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch d := e.Data.(type) {
	case *events.AlarmRaised:
		s.raised[e.AggregateID] = raisedAlarm{rule: d.Rule, resource: d.Resource, dims: maps.Clone(d.Dimensions)}
	case *events.AlarmResolved:
		delete(s.raised, e.AggregateID)
	case *events.RealServerUnhealthy:
		s.setHealthLocked(realServerDims(e.AggregateID, d.PoolID, d.MemberID, d.Address, d.Port), d.NodeID, true, d.Reason)
	case *events.RealServerHealthy:
		s.setHealthLocked(realServerDims(e.AggregateID, d.PoolID, d.MemberID, d.Address, d.Port), d.NodeID, false, "")
	case *events.MemberRemoved:
		s.dropServers(func(dims map[string]string) bool {
			return dims[events.DimLoadBalancer] == e.AggregateID && dims[dimMember] == d.MemberID
		})
	case *events.PoolDeleted:
		s.dropServers(func(dims map[string]string) bool {
			return dims[events.DimLoadBalancer] == e.AggregateID && dims[events.DimPool] == d.PoolID
		})
	case *events.ELBDeleted:
		s.dropServers(func(dims map[string]string) bool { return dims[events.DimLoadBalancer] == e.AggregateID })
	case *events.VMDeleted:
		s.gone[d.NodeID] = e.OccurredAt
		delete(s.seen, d.NodeID)
		for _, rs := range s.servers {
			delete(rs.byNode, d.NodeID)
		}
	}
	s.metrics.Active.Set(float64(len(s.raised)))
	return nil
}

const (
	dimMember = "Member"
	dimTarget = "Target"
)

func realServerDims(lb, pool, member, addr string, port int) map[string]string {
	dims := map[string]string{events.DimLoadBalancer: lb, dimTarget: net.JoinHostPort(addr, strconv.Itoa(port))}
	if pool != "" {
		dims[events.DimPool] = pool
	}
	if member != "" {
		dims[dimMember] = member
	}
	return dims
}

// setHealthLocked records one node's view of a real server. s.mu must be held.
func (s *Service) setHealthLocked(dims map[string]string, node string, unhealthy bool, reason string) {
	key := domain.Resource(dims)
	rs, ok := s.servers[key]
	if !ok {
		if !unhealthy {
			return
		}
		rs = &realServer{dims: dims, byNode: map[string]bool{}}
		s.servers[key] = rs
	}
	rs.byNode[node] = unhealthy
	if unhealthy {
		rs.reason = reason
	}
}

// HealthReport records a health change an agent reported on the report
// stream (the same facts as RealServerUnhealthy/Healthy events, straight
// from the checker).
func (s *Service) HealthReport(nodeID string, r events.HealthReport) error {
	if !events.ValidToken(nodeID) || !events.ValidToken(r.LoadBalancerID) {
		return fmt.Errorf("%w: health report of node %q for load balancer %q", ErrInvalidInput, nodeID, r.LoadBalancerID)
	}
	if r.Port < 1 || r.Port > 65535 || r.Address == "" {
		return fmt.Errorf("%w: health report target %q port %d", ErrInvalidInput, r.Address, r.Port)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setHealthLocked(realServerDims(r.LoadBalancerID, r.PoolID, r.MemberID, r.Address, r.Port), nodeID, !r.Healthy, r.Reason)
	return nil
}

// dropServers forgets real servers; their raised alarms resolve on the next
// tick. s.mu must be held.
func (s *Service) dropServers(match func(map[string]string) bool) {
	for k, rs := range s.servers {
		if match(rs.dims) {
			delete(s.servers, k)
		}
	}
}

// ObserveSamples evaluates every metric rule on the points of one node's
// batch: each matching point is one period of its series. Raises and
// resolves are appended before it returns; an append that fails is logged
// and happens again on the series' next period.
func (s *Service) ObserveSamples(ctx context.Context, nodeID string, b events.SampleBatch) error {
	if !events.ValidToken(nodeID) {
		s.metrics.Samples.WithLabelValues("rejected").Inc()
		return fmt.Errorf("%w: node id %q", ErrInvalidInput, nodeID)
	}
	now := s.clock()
	interval := b.Interval.Seconds()
	var ts []transition
	s.mu.Lock()
	for _, p := range b.Points {
		for _, r := range s.rules {
			if !r.Matches(p) {
				continue
			}
			v, ok := r.Value(p, interval)
			if !ok {
				continue
			}
			dims := maps.Clone(p.Dimensions)
			if dims == nil {
				dims = map[string]string{}
			}
			if dims[events.DimNode] == "" {
				dims[events.DimNode] = nodeID
			}
			if t, ok := s.evaluateLocked(r, dims, v, now); ok {
				t.message = fmt.Sprintf("%s %s of %s is %g (threshold %s %g, %d period(s))", r.Name, r.Statistic, r.Metric, v, r.Compare, r.Threshold, r.Periods)
				ts = append(ts, t)
			}
		}
	}
	s.mu.Unlock()
	s.metrics.Samples.WithLabelValues("evaluated").Inc()
	s.apply(ctx, ts)
	return nil
}

// evaluateLocked runs one period of a series. s.mu must be held.
func (s *Service) evaluateLocked(r domain.Rule, dims map[string]string, v float64, now time.Time) (transition, bool) {
	resource := domain.Resource(dims)
	id := domain.AlarmID(r.Name, resource)
	st, ok := s.series[id]
	if !ok {
		st = &series{}
		s.series[id] = st
	}
	_, raised := s.raised[id]
	var verdict domain.Verdict
	st.Series, verdict = domain.Evaluate(r, st.Series, raised, v)
	st.at = now
	if verdict == domain.Hold {
		return transition{}, false
	}
	return transition{verdict: verdict, rule: r, resource: resource, dims: dims, value: v}, true
}

// Heartbeat records that a node's agent was alive age ago (the age of the
// heartbeat message, so that heartbeats replayed at start-up count from
// when they were sent). Heartbeats older than the node's deletion are
// ignored.
func (s *Service) Heartbeat(nodeID string, age time.Duration) error {
	if !events.ValidToken(nodeID) {
		return fmt.Errorf("%w: node id %q", ErrInvalidInput, nodeID)
	}
	at := s.clock().Add(-max(age, 0))
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.gone[nodeID]; ok {
		if !at.After(g) {
			return nil
		}
		delete(s.gone, nodeID)
	}
	if at.After(s.seen[nodeID]) {
		s.seen[nodeID] = at
	}
	return nil
}

// Tick evaluates the rules that are not driven by samples (agent alive, real
// server health), resolves alarms whose subject is gone (deleted nodes,
// removed real servers) and forgets stale series.
func (s *Service) Tick(ctx context.Context) {
	now := s.clock()
	var ts []transition
	s.mu.Lock()
	for _, r := range s.rules {
		switch r.Kind {
		case domain.KindAgentAlive:
			for node, last := range s.seen {
				dims := map[string]string{events.DimNode: node}
				v := now.Sub(last).Seconds()
				if t, ok := s.evaluateLocked(r, dims, v, now); ok {
					t.message = fmt.Sprintf("agent on node %s: last heartbeat %.1f s ago (timeout %g s)", node, v, r.Threshold)
					ts = append(ts, t)
				}
			}
		case domain.KindRealServer:
			for _, rs := range s.servers {
				v := 0.0
				bad := rs.unhealthy()
				if bad {
					v = 1
				}
				if t, ok := s.evaluateLocked(r, rs.dims, v, now); ok {
					t.message = fmt.Sprintf("real server %s of load balancer %s is %s", rs.dims[dimTarget], rs.dims[events.DimLoadBalancer],
						map[bool]string{true: "unhealthy: " + rs.reason, false: "healthy again"}[bad])
					ts = append(ts, t)
				}
			}
		}
	}
	// Alarms whose subject disappeared resolve: a deleted node, a real
	// server no longer in any pool.
	for id, a := range s.raised {
		r, ok := s.byName[a.rule]
		gone := false
		if _, dead := s.gone[a.dims[events.DimNode]]; dead && a.dims[events.DimNode] != "" {
			gone = true
		}
		if ok && r.Kind == domain.KindRealServer {
			if _, present := s.servers[a.resource]; !present {
				gone = true
			}
		}
		if gone {
			ts = append(ts, transition{verdict: domain.Resolve, rule: domain.Rule{Name: a.rule}, resource: a.resource, dims: a.dims,
				message: "resolved: " + a.resource + " no longer exists"})
			delete(s.series, id)
		}
	}
	for id, st := range s.series {
		if now.Sub(st.at) > seriesTTL {
			delete(s.series, id)
		}
	}
	s.mu.Unlock()
	s.apply(ctx, ts)
	s.metrics.Evaluations.Inc()
}

func (s *Service) apply(ctx context.Context, ts []transition) {
	for _, t := range ts {
		if err := s.commit(ctx, t); err != nil && ctx.Err() == nil {
			s.log.Warn("alarm transition not recorded; retried on the next period", "rule", t.rule.Name, "resource", t.resource,
				"transition", t.verdict.String(), "err", err)
		}
	}
}

// commit appends one raise or resolve on the alarm's aggregate. It reloads
// the aggregate first: an alarm already raised is not raised again, one not
// raised is not resolved, whoever got there first.
func (s *Service) commit(ctx context.Context, t transition) error {
	id := domain.AlarmID(t.rule.Name, t.resource)
	for attempt := 1; ; attempt++ {
		evs, version, err := s.store.Load(ctx, events.AggAlarm, id)
		if err != nil {
			return fmt.Errorf("alarm %s: %w", id, err)
		}
		isRaised := false
		if n := len(evs); n > 0 {
			_, isRaised = evs[n-1].Data.(*events.AlarmRaised)
		}
		var payload any
		switch {
		case t.verdict == domain.Raise && !isRaised:
			payload = &events.AlarmRaised{Rule: t.rule.Name, Severity: t.rule.Severity, Resource: t.resource,
				Dimensions: t.dims, Value: t.value, Threshold: t.rule.Threshold, Message: t.message}
		case t.verdict == domain.Resolve && isRaised:
			payload = &events.AlarmResolved{Rule: t.rule.Name, Resource: t.resource, Value: t.value, Message: t.message}
		default:
			s.syncLocal(id, t, isRaised)
			return nil
		}
		env, err := events.New(events.AggAlarm, id, payload, events.Meta{Actor: Actor, CorrelationID: id})
		if err != nil {
			return fmt.Errorf("alarm %s: %w", id, err)
		}
		env.OccurredAt = s.clock().UTC()
		_, err = s.store.Append(ctx, events.AggAlarm, id, version, fmt.Sprintf("%s-v%d", id, version), env)
		if errors.Is(err, eventstore.ErrConcurrency) && attempt < maxAttempts {
			continue
		}
		if err != nil {
			return fmt.Errorf("alarm %s: %w", id, err)
		}
		s.syncLocal(id, t, t.verdict == domain.Raise)
		s.metrics.Transitions.WithLabelValues(t.rule.Name, t.verdict.String()).Inc()
		s.log.Info("alarm "+t.verdict.String()+"d", "aggregate_id", id, "correlation_id", id, "rule", t.rule.Name,
			"resource", t.resource, "value", t.value, "message", t.message)
		return nil
	}
}

// syncLocal records what the store says about an alarm, so the next period
// sees it even before the projection delivers the event.
func (s *Service) syncLocal(id string, t transition, raised bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if raised {
		s.raised[id] = raisedAlarm{rule: t.rule.Name, resource: t.resource, dims: t.dims}
	} else {
		delete(s.raised, id)
	}
	s.metrics.Active.Set(float64(len(s.raised)))
}

// NotifyEvent delivers an AlarmRaised or AlarmResolved to every channel,
// unless a silence covers it. An error (some channel failed after its own
// retries) asks the consumer to redeliver.
func (s *Service) NotifyEvent(ctx context.Context, e events.Event) error {
	var n domain.Notification
	switch d := e.Data.(type) {
	case *events.AlarmRaised:
		n = domain.Notification{Status: domain.StatusFiring, Rule: d.Rule, Severity: d.Severity, Resource: d.Resource,
			Dimensions: d.Dimensions, Value: d.Value, Threshold: d.Threshold, Message: d.Message}
	case *events.AlarmResolved:
		n = domain.Notification{Status: domain.StatusResolved, Rule: d.Rule, Severity: s.byName[d.Rule].Severity,
			Resource: d.Resource, Value: d.Value, Message: d.Message}
	default:
		return nil
	}
	n.EventID, n.AlarmID, n.Time = e.ID, e.AggregateID, e.OccurredAt
	s.mu.Lock()
	silenced := domain.Silenced(s.silences, n.Rule, n.Resource, s.clock())
	s.mu.Unlock()
	if silenced {
		s.metrics.Notifications.WithLabelValues("all", "silenced").Inc()
		s.log.Info("alarm notification silenced", "aggregate_id", n.AlarmID, "rule", n.Rule, "resource", n.Resource)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, NotifyTimeout)
	defer cancel()
	var errs []error
	for _, ch := range s.notifiers {
		if err := ch.Notify(ctx, n); err != nil {
			s.metrics.Notifications.WithLabelValues(ch.Name(), "failed").Inc()
			errs = append(errs, err)
			continue
		}
		s.metrics.Notifications.WithLabelValues(ch.Name(), "sent").Inc()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("notify %s %s: %w", n.Status, strings.TrimSpace(n.Rule+" "+n.Resource), err)
	}
	return nil
}
