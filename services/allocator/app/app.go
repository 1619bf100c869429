// Package app holds the allocator's command handlers: allocate a VIP for a
// requested load balancer, release it when the load balancer is gone, and
// register LVS pairs.
package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/allocator/domain"
)

// Store is the part of the event store the allocator uses.
type Store interface {
	Append(ctx context.Context, aggType, aggID string, expected uint64, commandID string, evs ...events.Envelope) (eventstore.AppendResult, error)
	Load(ctx context.Context, aggType, aggID string) ([]events.Event, uint64, error)
	Replay(ctx context.Context, f eventstore.Filter, fn func(events.Envelope) error) error
}

// Actor is the actor name on every event the allocator appends.
const Actor = "allocator"

// maxConflicts bounds the reload-and-retry loop of one command.
const maxConflicts = 200

// ErrTooManyConflicts is returned when an aggregate keeps changing under a
// command; the consumer retries the message later.
var ErrTooManyConflicts = errors.New("too many concurrency conflicts")

// Service allocates and releases VIPs.
type Service struct {
	store Store
	specs []domain.PoolSpec
	log   *slog.Logger

	mu       sync.Mutex
	pairs    []domain.Pair
	pairsAt  time.Time
	pairsTTL time.Duration
}

// New validates the pool specs and returns the service.
func New(store Store, pools []domain.PoolSpec, log *slog.Logger) (*Service, error) {
	if len(pools) == 0 {
		return nil, fmt.Errorf("%w: no pools", domain.ErrInvalidPool)
	}
	seen := map[string]bool{}
	for _, p := range pools {
		if _, err := domain.NewPool(p); err != nil {
			return nil, err
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("%w: duplicate pool %s", domain.ErrInvalidPool, p.Name)
		}
		seen[p.Name] = true
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{store: store, specs: pools, log: log, pairsTTL: 2 * time.Second}, nil
}

func (s *Service) loadPools(ctx context.Context) ([]*domain.Pool, error) {
	out := make([]*domain.Pool, 0, len(s.specs))
	for _, spec := range s.specs {
		p, _ := domain.NewPool(spec)
		evs, _, err := s.store.Load(ctx, events.AggVIPPool, spec.Name)
		if err != nil {
			return nil, fmt.Errorf("load pool %s: %w", spec.Name, err)
		}
		for _, e := range evs {
			p.Apply(e)
		}
		out = append(out, p)
	}
	return out, nil
}

// Pools returns the current state of every pool (for tests and admin views).
func (s *Service) Pools(ctx context.Context) ([]*domain.Pool, error) { return s.loadPools(ctx) }

func (s *Service) loadLB(ctx context.Context, id string) (*domain.LBView, error) {
	evs, _, err := s.store.Load(ctx, events.AggLoadBalancer, id)
	if err != nil {
		return nil, fmt.Errorf("load load balancer %s: %w", id, err)
	}
	v := &domain.LBView{}
	for _, e := range evs {
		v.Apply(e)
	}
	return v, nil
}

// Pairs lists the registered LVS pairs (last registration of each wins).
// The list is cached for a short while: pairs change rarely and listing them
// is a replay.
func (s *Service) Pairs(ctx context.Context) ([]domain.Pair, error) {
	s.mu.Lock()
	if s.pairs != nil && time.Since(s.pairsAt) < s.pairsTTL {
		out := s.pairs
		s.mu.Unlock()
		return out, nil
	}
	s.mu.Unlock()
	out, err := s.listPairs(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.pairs, s.pairsAt = out, time.Now()
	s.mu.Unlock()
	return out, nil
}

func (s *Service) listPairs(ctx context.Context) ([]domain.Pair, error) {
	byName := map[string]domain.Pair{}
	err := s.store.Replay(ctx, eventstore.Filter{AggregateType: events.AggLVSPair, Types: []string{events.TypeLVSPairRegistered}}, func(env events.Envelope) error {
		ev, err := events.DecodeEnvelope(env)
		if err != nil {
			s.log.Warn("skipping undecodable lvs pair event", "id", env.ID, "err", err)
			return nil
		}
		p := domain.PairFromEvent(ev.Data.(*events.LVSPairRegistered))
		byName[p.Name] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list lvs pairs: %w", err)
	}
	out := make([]domain.Pair, 0, len(byName))
	for _, p := range byName {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RegisterPair records an LVS pair unless the same registration is already
// the pair's latest.
func (s *Service) RegisterPair(ctx context.Context, p domain.Pair) error {
	if err := p.Validate(); err != nil {
		return err
	}
	for range maxConflicts {
		evs, version, err := s.store.Load(ctx, events.AggLVSPair, p.Name)
		if err != nil {
			return fmt.Errorf("register lvs pair %s: %w", p.Name, err)
		}
		if n := len(evs); n > 0 {
			if last, ok := evs[n-1].Data.(*events.LVSPairRegistered); ok && samePair(domain.PairFromEvent(last), p) {
				return nil
			}
		}
		env := events.MustNew(events.AggLVSPair, p.Name, &events.LVSPairRegistered{Pair: p.Name, Nodes: p.Nodes, AvailabilityZone: p.AvailabilityZone, Capacity: p.Capacity}, events.Meta{Actor: Actor})
		_, err = s.store.Append(ctx, events.AggLVSPair, p.Name, version, "", env)
		if errors.Is(err, eventstore.ErrConcurrency) {
			continue
		}
		if err != nil {
			return fmt.Errorf("register lvs pair %s: %w", p.Name, err)
		}
		s.log.Info("lvs pair registered", "pair", p.Name, "nodes", p.Nodes)
		s.mu.Lock()
		s.pairs = nil
		s.mu.Unlock()
		return nil
	}
	return fmt.Errorf("register lvs pair %s: %w", p.Name, ErrTooManyConflicts)
}

func samePair(a, b domain.Pair) bool {
	if a.Name != b.Name || a.AvailabilityZone != b.AvailabilityZone || a.Capacity != b.Capacity || len(a.Nodes) != len(b.Nodes) {
		return false
	}
	for i := range a.Nodes {
		if a.Nodes[i] != b.Nodes[i] {
			return false
		}
	}
	return true
}

// Allocate hands a VIP to the load balancer of an ELBRequested event, or
// records AllocationFailed. See AllocateBatch.
func (s *Service) Allocate(ctx context.Context, req events.Envelope) error {
	return s.AllocateBatch(ctx, []events.Envelope{req})[req.AggregateID]
}

type request struct {
	env       events.Envelope
	spec      events.LoadBalancerSpec
	requested netip.Addr
	meta      events.Meta
}

// AllocateBatch decides VIPs for several ELBRequested events against one
// loaded state and appends each pool's allocations in one commit: one load
// and one append per pool instead of one per request. It is idempotent: a
// redelivered request finds its allocation and only makes sure it is
// mirrored on the load balancer (the mirror also returns the VIP of a load
// balancer that closed meanwhile, so the load balancer is not loaded here).
//
// The commit goes to the pool aggregate at the version the decisions were
// made on, so among concurrent allocators exactly one wins an address; the
// others reload and decide again. The result maps load balancer id to error.
func (s *Service) AllocateBatch(ctx context.Context, reqs []events.Envelope) map[string]error {
	out := map[string]error{}
	var todo []*request
	for _, env := range reqs {
		ev, err := events.DecodeEnvelope(env)
		if err != nil {
			out[env.AggregateID] = err
			continue
		}
		r, ok := ev.Data.(*events.ELBRequested)
		if !ok {
			out[env.AggregateID] = fmt.Errorf("allocate for %s: %s is not %s", env.AggregateID, env.Type, events.TypeELBRequested)
			continue
		}
		rq := &request{env: env, spec: r.Spec, meta: events.Caused(env, Actor)}
		if r.Spec.VIPAddress != "" {
			a, err := netip.ParseAddr(r.Spec.VIPAddress)
			if err != nil {
				out[env.AggregateID] = s.fail(ctx, env.AggregateID, rq.meta, fmt.Errorf("vip_address %q: %w", r.Spec.VIPAddress, domain.ErrAddressNotInPool))
				continue
			}
			rq.requested = a
		}
		todo = append(todo, rq)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	finish := func(rq *request, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fn()
			mu.Lock()
			out[rq.env.AggregateID] = err
			mu.Unlock()
		}()
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == maxConflicts {
			for _, rq := range todo {
				out[rq.env.AggregateID] = fmt.Errorf("allocate vip for %s: %w", rq.env.AggregateID, ErrTooManyConflicts)
			}
			break
		}
		pools, err := s.loadPools(ctx)
		if err == nil {
			var pairs []domain.Pair
			pairs, err = s.Pairs(ctx)
			if err == nil {
				todo, err = s.decideBatch(ctx, pools, pairs, todo, finish)
			}
		}
		if err != nil {
			for _, rq := range todo {
				out[rq.env.AggregateID] = err
			}
			break
		}
	}
	wg.Wait()
	return out
}

// decideBatch decides and appends one round; it returns the requests to try
// again (their pool changed meanwhile).
func (s *Service) decideBatch(ctx context.Context, pools []*domain.Pool, pairs []domain.Pair, todo []*request, finish func(*request, func() error)) ([]*request, error) {
	load := map[string]int{}
	for _, p := range pools {
		for _, a := range p.Allocations() {
			load[a.Pair]++
		}
	}
	type planned struct {
		rq    *request
		alloc events.VIPAllocated
	}
	byPool := map[*domain.Pool][]planned{}
	for _, rq := range todo {
		lbID := rq.env.AggregateID
		if pool, al, ok := find(pools, lbID); ok {
			ev := events.VIPAllocated{LoadBalancerID: lbID, Pool: pool.Name(), Address: al.Address.String(), LVSPair: al.Pair, AvailabilityZone: pool.AvailabilityZone()}
			finish(rq, func() error { return s.mirror(ctx, lbID, rq.meta, ev) })
			continue
		}
		pool, alloc, err := decide(pools, pairs, load, lbID, rq.spec.AvailabilityZone, rq.requested)
		if err != nil {
			s.log.Warn("vip allocation failed", "loadbalancer", lbID, "correlation", rq.env.CorrelationID, "err", err)
			finish(rq, func() error { return s.fail(ctx, lbID, rq.meta, err) })
			continue
		}
		pool.Plan(alloc)
		load[alloc.LVSPair]++
		byPool[pool] = append(byPool[pool], planned{rq, alloc})
	}
	var again []*request
	for pool, plan := range byPool {
		envs := make([]events.Envelope, len(plan))
		h := sha256.New()
		for i, p := range plan {
			envs[i] = events.MustNew(events.AggVIPPool, pool.Name(), &p.alloc, p.rq.meta)
			h.Write([]byte(p.rq.env.AggregateID + "\x00"))
		}
		cmd := fmt.Sprintf("alloc-%s-%d-%x", pool.Name(), pool.Version(), h.Sum(nil)[:8])
		res, err := s.store.Append(ctx, events.AggVIPPool, pool.Name(), pool.Version(), cmd, envs...)
		if errors.Is(err, eventstore.ErrConcurrency) || (err == nil && res.Duplicate) {
			for _, p := range plan {
				again = append(again, p.rq)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("allocate vips from %s: %w", pool.Name(), err)
		}
		for _, p := range plan {
			s.log.Info("vip allocated", "loadbalancer", p.rq.env.AggregateID, "correlation", p.rq.env.CorrelationID, "vip", p.alloc.Address, "pool", p.alloc.Pool, "pair", p.alloc.LVSPair)
			finish(p.rq, func() error { return s.mirror(ctx, p.rq.env.AggregateID, p.rq.meta, p.alloc) })
		}
	}
	return again, nil
}

func find(pools []*domain.Pool, lbID string) (*domain.Pool, domain.Allocation, bool) {
	for _, p := range pools {
		if a, ok := p.Of(lbID); ok {
			return p, a, true
		}
	}
	return nil, domain.Allocation{}, false
}

// decide picks the pool, address and pair.
func decide(pools []*domain.Pool, pairs []domain.Pair, load map[string]int, lbID, az string, requested netip.Addr) (*domain.Pool, events.VIPAllocated, error) {
	pair, err := domain.ChoosePair(pairs, load, az)
	if err != nil {
		return nil, events.VIPAllocated{}, err
	}
	if requested.IsValid() {
		for _, p := range pools {
			if !p.Contains(requested) {
				continue
			}
			if !p.Serves(az) {
				return nil, events.VIPAllocated{}, fmt.Errorf("%s belongs to zone %q, not %q: %w", requested, p.AvailabilityZone(), az, domain.ErrAddressNotInPool)
			}
			ev, err := p.Allocate(lbID, requested, pair)
			return p, ev, err
		}
		return nil, events.VIPAllocated{}, fmt.Errorf("%s: %w", requested, domain.ErrAddressNotInPool)
	}
	served := false
	for _, p := range pools {
		if !p.Serves(az) {
			continue
		}
		served = true
		ev, err := p.Allocate(lbID, netip.Addr{}, pair)
		if errors.Is(err, domain.ErrVIPPoolExhausted) {
			continue
		}
		return p, ev, err
	}
	if !served {
		return nil, events.VIPAllocated{}, fmt.Errorf("no pool serves zone %q: %w", az, domain.ErrVIPPoolExhausted)
	}
	return nil, events.VIPAllocated{}, fmt.Errorf("zone %q: %w", az, domain.ErrVIPPoolExhausted)
}

// mirror copies the allocation onto the load balancer aggregate, where the
// provisioner's workflow and the API's read model see it. If the load
// balancer was closed meanwhile (failed, deleted), the VIP goes straight back.
func (s *Service) mirror(ctx context.Context, lbID string, meta events.Meta, ev events.VIPAllocated) error {
	for range maxConflicts {
		lb, err := s.loadLB(ctx, lbID)
		if err != nil {
			return err
		}
		if lb.VIP != "" {
			return nil
		}
		if lb.Closed() {
			return s.Release(ctx, lbID, meta)
		}
		env := events.MustNew(events.AggLoadBalancer, lbID, &ev, meta)
		_, err = s.store.Append(ctx, events.AggLoadBalancer, lbID, lb.Version, "vip-"+lbID, env)
		if errors.Is(err, eventstore.ErrConcurrency) {
			continue
		}
		if err != nil {
			return fmt.Errorf("record vip on load balancer %s: %w", lbID, err)
		}
		return nil
	}
	return fmt.Errorf("record vip on load balancer %s: %w", lbID, ErrTooManyConflicts)
}

func (s *Service) fail(ctx context.Context, lbID string, meta events.Meta, cause error) error {
	for range maxConflicts {
		lb, err := s.loadLB(ctx, lbID)
		if err != nil {
			return err
		}
		if lb.VIP != "" || lb.Closed() {
			return nil
		}
		env := events.MustNew(events.AggLoadBalancer, lbID, &events.AllocationFailed{LoadBalancerID: lbID, Reason: cause.Error()}, meta)
		_, err = s.store.Append(ctx, events.AggLoadBalancer, lbID, lb.Version, "allocfail-"+lbID, env)
		if errors.Is(err, eventstore.ErrConcurrency) {
			continue
		}
		if err != nil {
			return fmt.Errorf("record allocation failure of %s: %w", lbID, err)
		}
		return nil
	}
	return fmt.Errorf("record allocation failure of %s: %w", lbID, ErrTooManyConflicts)
}

// ReleaseIfDone returns a load balancer's VIP when the load balancer is
// deleted or its create was rolled back (see LBView.MustRelease).
func (s *Service) ReleaseIfDone(ctx context.Context, e events.Envelope) error {
	lb, err := s.loadLB(ctx, e.AggregateID)
	if err != nil {
		return err
	}
	if !lb.MustRelease() {
		return nil
	}
	return s.Release(ctx, e.AggregateID, events.Caused(e, Actor))
}

// Release returns every address lbID holds. Idempotent.
func (s *Service) Release(ctx context.Context, lbID string, meta events.Meta) error {
	for range maxConflicts {
		pools, err := s.loadPools(ctx)
		if err != nil {
			return err
		}
		pool, al, ok := find(pools, lbID)
		if !ok {
			return nil
		}
		ev, _ := pool.Release(lbID)
		env := events.MustNew(events.AggVIPPool, pool.Name(), &ev, meta)
		_, err = s.store.Append(ctx, events.AggVIPPool, pool.Name(), pool.Version(), "release-"+lbID+"-"+al.Address.String(), env)
		if errors.Is(err, eventstore.ErrConcurrency) {
			continue
		}
		if err != nil {
			return fmt.Errorf("release vip of %s: %w", lbID, err)
		}
		s.log.Info("vip released", "loadbalancer", lbID, "vip", ev.Address, "pool", ev.Pool)
	}
	return fmt.Errorf("release vip of %s: %w", lbID, ErrTooManyConflicts)
}

// Sweep releases every allocation whose load balancer is gone or rolled
// back: the safety net for a release lost to a crash between events.
func (s *Service) Sweep(ctx context.Context) (released int, err error) {
	pools, err := s.loadPools(ctx)
	if err != nil {
		return 0, err
	}
	for _, p := range pools {
		for _, a := range p.Allocations() {
			lb, err := s.loadLB(ctx, a.LoadBalancerID)
			if err != nil {
				return released, err
			}
			if !lb.MustRelease() && lb.Exists {
				continue
			}
			if !lb.Exists && lb.Version > 0 {
				continue
			}
			if err := s.Release(ctx, a.LoadBalancerID, events.Meta{Actor: Actor}); err != nil {
				return released, err
			}
			released++
		}
	}
	return released, nil
}
