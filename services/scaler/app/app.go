// Package app is the scaler's application layer: it keeps the load
// balancers' scaling state (fed by the event projection) and the nodes' load
// windows (fed by agent samples), and on every tick turns them into
// ScaleOutDecided / ScaleInDecided appended with optimistic concurrency.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/scaler/domain"
)

// Actor is the actor recorded on the scaler's events.
const Actor = "scaler"

// maxAttempts bounds the reload-and-retry loop of one decision.
const maxAttempts = 5

// maxClockSkew is how far in the future a sample may claim to be.
const maxClockSkew = time.Minute

// ErrInvalidSample is wrapped by Observe for a batch that cannot be used.
var ErrInvalidSample = errors.New("invalid sample batch")

// Store is the part of the event store the scaler uses.
type Store interface {
	Load(ctx context.Context, aggType, aggID string) ([]events.Event, uint64, error)
	Append(ctx context.Context, aggType, aggID string, expected uint64, commandID string, evs ...events.Envelope) (eventstore.AppendResult, error)
}

// Service is the scaler. Its methods are safe for concurrent use.
type Service struct {
	store    Store
	defaults domain.Policy
	clock    func() time.Time
	log      *slog.Logger
	metrics  *Metrics

	mu       sync.Mutex
	lbs      map[string]*domain.LB
	policies map[string]*events.ScalePolicySet
	nodeLB   map[string]string
	window   *domain.Window
}

// New returns a scaler using defaults for every load balancer that sets
// nothing. clock, log and metrics may be nil.
func New(store Store, defaults domain.Policy, clock func() time.Time, log *slog.Logger, metrics *Metrics) (*Service, error) {
	if err := defaults.Validate(); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Service{store: store, defaults: defaults, clock: clock, log: log, metrics: metrics,
		lbs: map[string]*domain.LB{}, policies: map[string]*events.ScalePolicySet{},
		nodeLB: map[string]string{}, window: domain.NewWindow()}, nil
}

// ApplyEvent folds one event of the stream into the read model (load
// balancer and scale policy aggregates; others are ignored).
func (s *Service) ApplyEvent(e events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.AggregateType {
	case events.AggLoadBalancer:
		lb, ok := s.lbs[e.AggregateID]
		if !ok {
			lb = domain.NewLB(e.AggregateID)
			s.lbs[e.AggregateID] = lb
		}
		lb.Apply(e)
		if _, gone := e.Data.(*events.ELBDeleted); gone {
			for _, n := range lb.Nodes() {
				delete(s.nodeLB, n)
				s.window.Forget(n)
			}
			delete(s.lbs, e.AggregateID)
			delete(s.policies, e.AggregateID)
			return nil
		}
		if d, ok := e.Data.(*events.VMDeleted); ok {
			delete(s.nodeLB, d.NodeID)
			s.window.Forget(d.NodeID)
		}
		for _, n := range lb.Nodes() {
			if _, ok := s.nodeLB[n]; !ok {
				s.nodeLB[n] = e.AggregateID
			}
		}
	case events.AggScalePolicy:
		d, ok := e.Data.(*events.ScalePolicySet)
		if !ok {
			return nil
		}
		id := d.LoadBalancerID
		if id == "" {
			id = e.AggregateID
		}
		p := *d
		s.policies[id] = &p
	}
	return nil
}

// Observe records a node's sample batch. Batches of nodes that belong to no
// load balancer, or with no load figures, are ignored; a batch whose time is
// outside the window or far in the future is rejected.
func (s *Service) Observe(nodeID string, b events.SampleBatch) error {
	if !events.ValidToken(nodeID) {
		s.metrics.Samples.WithLabelValues("rejected").Inc()
		return fmt.Errorf("%w: node id %q", ErrInvalidSample, nodeID)
	}
	now := s.clock()
	if b.Time.IsZero() || b.Time.After(now.Add(maxClockSkew)) || !b.Time.After(now.Add(-s.defaults.Window)) {
		s.metrics.Samples.WithLabelValues("rejected").Inc()
		return fmt.Errorf("%w: node %s: time %s outside the window ending %s", ErrInvalidSample, nodeID,
			b.Time.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	smp, ok := domain.SampleFromBatch(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.nodeLB[nodeID]; !known || !ok {
		s.metrics.Samples.WithLabelValues("ignored").Inc()
		return nil
	}
	s.window.Add(nodeID, smp)
	s.metrics.Samples.WithLabelValues("used").Inc()
	return nil
}

// policyLocked is the effective policy of a load balancer. s.mu must be held.
func (s *Service) policyLocked(lb *domain.LB) domain.Policy {
	return s.defaults.Effective(lb.Override(s.policies[lb.ID()]))
}

// Tick evaluates every active load balancer and appends the decisions it
// takes. It returns how many decisions were appended; errors of single load
// balancers are joined and do not stop the others.
func (s *Service) Tick(ctx context.Context) (int, error) {
	now := s.clock()
	var candidates []string
	s.mu.Lock()
	s.window.Prune(now.Add(-s.defaults.Window))
	managed := 0
	for id, lb := range s.lbs {
		if !lb.Active() {
			continue
		}
		managed++
		pol := s.policyLocked(lb)
		d := domain.Decide(domain.Input{Now: now, Desired: lb.Desired(), Serving: lb.Serving(), LastScale: lb.LastScale(),
			Policy: pol, Load: s.window.Load(now, pol.Window, lb.Serving())})
		if d.Action != domain.None {
			candidates = append(candidates, id)
		}
	}
	s.mu.Unlock()
	s.metrics.Managed.Set(float64(managed))
	var errs []error
	n := 0
	for _, id := range candidates {
		ok, err := s.decide(ctx, id)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// decide reloads a load balancer from the event store, decides on the fresh
// state and appends the decision at the version it read; a concurrent change
// makes it reload and decide again.
func (s *Service) decide(ctx context.Context, id string) (bool, error) {
	for attempt := 1; ; attempt++ {
		evs, version, err := s.store.Load(ctx, events.AggLoadBalancer, id)
		if err != nil {
			return false, fmt.Errorf("scale %s: %w", id, err)
		}
		lb := domain.NewLB(id)
		for _, e := range evs {
			lb.Apply(e)
		}
		if !lb.Active() {
			return false, nil
		}
		now := s.clock()
		s.mu.Lock()
		pol := s.policyLocked(lb)
		load := s.window.Load(now, pol.Window, lb.Serving())
		s.mu.Unlock()
		d := domain.Decide(domain.Input{Now: now, Desired: lb.Desired(), Serving: lb.Serving(), LastScale: lb.LastScale(),
			Policy: pol, Load: load})
		var payload any
		switch d.Action {
		case domain.None:
			return false, nil
		case domain.ScaleOut:
			payload = &events.ScaleOutDecided{From: d.From, To: d.To, Reason: d.Reason}
		case domain.ScaleIn:
			payload = &events.ScaleInDecided{From: d.From, To: d.To, Nodes: d.Nodes, Reason: d.Reason}
		}
		env, err := events.New(events.AggLoadBalancer, id, payload, events.Meta{Actor: Actor, CorrelationID: "scale-" + id})
		if err != nil {
			return false, fmt.Errorf("scale %s: %w", id, err)
		}
		// The decision's time is the scaler's clock: the cooldown is
		// measured on it.
		env.OccurredAt = now.UTC()
		// One decision per aggregate version: a retried append after a crash
		// stores nothing twice.
		cmdID := fmt.Sprintf("scaler-%s-v%d", id, version)
		_, err = s.store.Append(ctx, events.AggLoadBalancer, id, version, cmdID, env)
		if errors.Is(err, eventstore.ErrConcurrency) && attempt < maxAttempts {
			s.metrics.Conflicts.Inc()
			continue
		}
		if err != nil {
			return false, fmt.Errorf("scale %s: %w", id, err)
		}
		s.metrics.Decisions.WithLabelValues(d.Action.String()).Inc()
		s.log.Info("scaling decided", "aggregate_id", id, "correlation_id", env.CorrelationID, "action", d.Action.String(),
			"from", d.From, "to", d.To, "nodes", d.Nodes, "reason", d.Reason)
		return true, nil
	}
}

// SetPolicy records a load balancer's scaling policy (the command behind
// ScalePolicySet; the gateway or an operator tool calls it). Zero fields keep
// the defaults; PreWarm holds at least that many nodes until cleared.
func (s *Service) SetPolicy(ctx context.Context, p events.ScalePolicySet, meta events.Meta) error {
	return SetPolicy(ctx, s.store, s.defaults, p, meta)
}

// SetPolicy validates p against defaults and appends it on the scale policy
// aggregate of its load balancer.
func SetPolicy(ctx context.Context, store Store, defaults domain.Policy, p events.ScalePolicySet, meta events.Meta) error {
	if !events.ValidToken(p.LoadBalancerID) {
		return fmt.Errorf("%w: load balancer id %q", domain.ErrInvalidPolicy, p.LoadBalancerID)
	}
	if p.Min < 0 || p.Max < 0 || p.CooldownSeconds < 0 || p.PreWarm < 0 {
		return fmt.Errorf("%w: negative value", domain.ErrInvalidPolicy)
	}
	if p.Max > 0 && p.Min > p.Max {
		return fmt.Errorf("%w: min %d > max %d", domain.ErrInvalidPolicy, p.Min, p.Max)
	}
	if p.Max > 0 && p.PreWarm > p.Max {
		return fmt.Errorf("%w: pre-warm %d > max %d", domain.ErrInvalidPolicy, p.PreWarm, p.Max)
	}
	if err := defaults.Effective(domain.Override{Set: &p}).Validate(); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		_, version, err := store.Load(ctx, events.AggScalePolicy, p.LoadBalancerID)
		if err != nil {
			return fmt.Errorf("set scale policy of %s: %w", p.LoadBalancerID, err)
		}
		env, err := events.New(events.AggScalePolicy, p.LoadBalancerID, &p, meta)
		if err != nil {
			return fmt.Errorf("set scale policy of %s: %w", p.LoadBalancerID, err)
		}
		_, err = store.Append(ctx, events.AggScalePolicy, p.LoadBalancerID, version, "", env)
		if errors.Is(err, eventstore.ErrConcurrency) && attempt < maxAttempts {
			continue
		}
		if err != nil {
			return fmt.Errorf("set scale policy of %s: %w", p.LoadBalancerID, err)
		}
		return nil
	}
}
