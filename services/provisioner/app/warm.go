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
	"github.com/elbcloud/elb/services/provisioner/compute"
	"github.com/elbcloud/elb/services/provisioner/domain"
)

// WarmPool keeps Size idle tengine nodes booted so that a create takes one
// instead of waiting for a boot. Its state is the warm pool node aggregate
// (events.AggNode, id domain.WarmPoolID); claims are appended there with an
// expected version, so a node goes to exactly one load balancer.
type WarmPool struct {
	store   Store
	driver  compute.Driver
	size    int
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	running map[string]bool
	wg      sync.WaitGroup
	changed chan struct{}
}

// NewWarmPool returns a pool of size nodes; readyTimeout bounds each boot.
func NewWarmPool(store Store, driver compute.Driver, size int, readyTimeout time.Duration, log *slog.Logger) *WarmPool {
	if log == nil {
		log = slog.Default()
	}
	if readyTimeout <= 0 {
		readyTimeout = 2 * time.Minute
	}
	return &WarmPool{store: store, driver: driver, size: size, timeout: readyTimeout, log: log.With("component", "warmpool"),
		running: map[string]bool{}, changed: make(chan struct{}, 1)}
}

func (w *WarmPool) load(ctx context.Context) (*domain.WarmPool, error) {
	evs, _, err := w.store.Load(ctx, events.AggNode, domain.WarmPoolID)
	if err != nil {
		return nil, fmt.Errorf("load warm pool: %w", err)
	}
	p := domain.NewWarmPool()
	for _, e := range evs {
		p.Apply(e)
	}
	return p, nil
}

// State returns the pool's current state.
func (w *WarmPool) State(ctx context.Context) (*domain.WarmPool, error) { return w.load(ctx) }

func (w *WarmPool) append(ctx context.Context, p *domain.WarmPool, cmd string, datas ...any) error {
	envs := make([]events.Envelope, 0, len(datas))
	for _, d := range datas {
		envs = append(envs, events.MustNew(events.AggNode, domain.WarmPoolID, d, events.Meta{Actor: Actor}))
	}
	_, err := w.store.Append(ctx, events.AggNode, domain.WarmPoolID, p.Version(), cmd, envs...)
	return err
}

// Claim hands a ready idle node to lbID; ok is false when none is ready.
func (w *WarmPool) Claim(ctx context.Context, lbID string, known func(string) bool) (domain.WarmNode, bool, error) {
	for range 100 {
		p, err := w.load(ctx)
		if err != nil {
			return domain.WarmNode{}, false, err
		}
		n, already, ok := p.ClaimFor(lbID, known)
		if !ok {
			return domain.WarmNode{}, false, nil
		}
		if already {
			return n, true, nil
		}
		err = w.append(ctx, p, "claim-"+lbID+"-"+n.ID, &events.NodeClaimed{NodeID: n.ID, LoadBalancerID: lbID})
		if errors.Is(err, eventstore.ErrConcurrency) {
			continue
		}
		if err != nil {
			return domain.WarmNode{}, false, err
		}
		w.poke()
		return n, true, nil
	}
	return domain.WarmNode{}, false, nil
}

func (w *WarmPool) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// Run keeps the pool filled until ctx ends.
func (w *WarmPool) Run(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if err := w.fill(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("filling warm pool", "err", err)
		}
		select {
		case <-ctx.Done():
			w.wg.Wait()
			return
		case <-t.C:
		case <-w.changed:
		}
	}
}

func (w *WarmPool) fill(ctx context.Context) error {
	p, err := w.load(ctx)
	if err != nil {
		return err
	}
	if missing := w.size - p.Idle(); missing > 0 {
		var datas []any
		for i := range missing {
			id := fmt.Sprintf("wp-%d", p.Version()+uint64(i)+1)
			datas = append(datas, &events.VMRequested{NodeID: id, Deadline: time.Now().Add(w.timeout).UTC()})
		}
		err := w.append(ctx, p, fmt.Sprintf("warm-request-%d", p.Version()), datas...)
		if err != nil && !errors.Is(err, eventstore.ErrConcurrency) {
			return err
		}
		if p, err = w.load(ctx); err != nil {
			return err
		}
	}
	for _, n := range p.Nodes() {
		switch {
		case n.Status == domain.NodeRequested:
			w.start(ctx, n, func(ctx context.Context) { w.ensure(ctx, n) })
		case n.Status == domain.NodeFailed:
			w.start(ctx, n, func(ctx context.Context) { w.remove(ctx, n) })
		}
	}
	return nil
}

func (w *WarmPool) start(ctx context.Context, n domain.WarmNode, fn func(context.Context)) {
	w.mu.Lock()
	if w.running[n.ID] {
		w.mu.Unlock()
		return
	}
	w.running[n.ID] = true
	w.wg.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.wg.Done()
		fn(ctx)
		w.mu.Lock()
		delete(w.running, n.ID)
		w.mu.Unlock()
		w.poke()
	}()
}

func (w *WarmPool) record(ctx context.Context, cmd string, build func(p *domain.WarmPool) []any) error {
	for range 100 {
		p, err := w.load(ctx)
		if err != nil {
			return err
		}
		datas := build(p)
		if len(datas) == 0 {
			return nil
		}
		err = w.append(ctx, p, cmd, datas...)
		if errors.Is(err, eventstore.ErrConcurrency) {
			continue
		}
		return err
	}
	return fmt.Errorf("warm pool %s: too many conflicts", cmd)
}

func (w *WarmPool) ensure(ctx context.Context, n domain.WarmNode) {
	dctx, cancel := context.WithDeadline(ctx, n.Deadline)
	defer cancel()
	got, err := w.driver.Create(dctx, compute.Spec{NodeID: n.ID, Role: events.RoleTengine})
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		w.log.Warn("warm node failed", "node", n.ID, "err", err)
		_ = w.record(ctx, "warm-failed-"+n.ID, func(p *domain.WarmPool) []any {
			if c, ok := p.Node(n.ID); ok && c.Status == domain.NodeRequested {
				return []any{&events.VMFailed{NodeID: n.ID, Reason: err.Error()}}
			}
			return nil
		})
		return
	}
	if err := w.record(ctx, "warm-ready-"+n.ID, func(p *domain.WarmPool) []any {
		if c, ok := p.Node(n.ID); ok && c.Status == domain.NodeRequested {
			return []any{&events.VMReady{NodeID: n.ID, ServerID: got.ServerID, Address: got.Address}}
		}
		return nil
	}); err != nil {
		w.log.Warn("recording warm node", "node", n.ID, "err", err)
	}
}

func (w *WarmPool) remove(ctx context.Context, n domain.WarmNode) {
	dctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	if err := w.driver.Delete(dctx, n.ID); err != nil {
		w.log.Warn("deleting failed warm node", "node", n.ID, "err", err)
		return
	}
	_ = w.record(ctx, "warm-deleted-"+n.ID, func(p *domain.WarmPool) []any {
		if c, ok := p.Node(n.ID); ok && c.Status != domain.NodeDeleted {
			return []any{&events.VMDeleted{NodeID: n.ID}}
		}
		return nil
	})
}

// claimWarm satisfies the first node request with a warm node when one is
// ready: NodeClaimed on the pool, then VMRequested+VMReady on the load
// balancer in one commit.
func (r *Reconciler) claimWarm(ctx context.Context, lb *domain.LB, a domain.RequestNodes, log *slog.Logger) (bool, error) {
	if len(a.Requests) == 0 {
		return false, nil
	}
	n, ok, err := r.cfg.Warm.Claim(ctx, lb.ID(), func(id string) bool { _, known := lb.Node(id); return known })
	if err != nil || !ok {
		return false, err
	}
	req := a.Requests[0]
	req.NodeID = n.ID
	log.Info("warm node claimed", "node", n.ID, "address", n.Address)
	return r.appendAt(ctx, lb, "claim-"+n.ID, &req, &events.VMReady{LoadBalancerID: lb.ID(), NodeID: n.ID, ServerID: n.ServerID, Address: n.Address})
}
