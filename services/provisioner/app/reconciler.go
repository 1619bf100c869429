// Package app runs the provisioning workflow: a reconciler loads a load
// balancer's history, asks the domain what to do next and does it. Short
// steps (appends, config writes) run inline; node builds and deletions run as
// background operations that append their outcome and kick the load balancer
// again. Every step is idempotent, so a redelivered event, a timer tick or a
// restarted provisioner never does a thing twice.
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
	"github.com/elbcloud/elb/services/provisioner/adapters"
	"github.com/elbcloud/elb/services/provisioner/compute"
	"github.com/elbcloud/elb/services/provisioner/domain"
)

// Actor is the actor name on every event the provisioner appends.
const Actor = "provisioner"

// Store is the part of the event store the provisioner uses.
type Store interface {
	Append(ctx context.Context, aggType, aggID string, expected uint64, commandID string, evs ...events.Envelope) (eventstore.AppendResult, error)
	Load(ctx context.Context, aggType, aggID string) ([]events.Event, uint64, error)
}

// DesiredConfigs writes node configs (adapters.Desired).
type DesiredConfigs interface {
	Update(ctx context.Context, nodeID, role string, mutate func(*events.NodeConfig) bool) (uint64, error)
	UpdateShared(ctx context.Context, nodeID, role string, mutate func(*events.NodeConfig) bool) (uint64, error)
	Delete(ctx context.Context, nodeID string) error
}

// Reports reads agents' applied reports (adapters.Reports).
type Reports interface {
	LastApplied(ctx context.Context, nodeID string) (events.AppliedReport, bool, error)
}

// Heartbeats reads agents' last heartbeats (adapters.Reports).
type Heartbeats interface {
	LastHeartbeat(ctx context.Context, nodeID string) (time.Time, bool, error)
}

// Config wires a Reconciler.
type Config struct {
	Store   Store
	Desired DesiredConfigs
	Reports Reports
	Driver  compute.Driver
	Policy  domain.Policy
	// Workers reconcile different load balancers in parallel (default 8).
	Workers int
	// Tick is how often in-flight workflows are looked at even when nothing
	// happened, so deadlines fire (default 500 ms).
	Tick time.Duration
	// Warm, when set, hands out pre-provisioned nodes.
	Warm *WarmPool
	// Heartbeats and NodeLostAfter enable the liveness watch: a serving node
	// whose agent has not sent a heartbeat for NodeLostAfter is declared
	// lost (NodeLost) and replaced. Zero disables it.
	Heartbeats    Heartbeats
	NodeLostAfter time.Duration
	Logger        *slog.Logger
	Now           func() time.Time
}

// Reconciler drives every load balancer's workflow.
type Reconciler struct {
	cfg Config
	pol domain.Policy
	log *slog.Logger
	q   *queue

	mu       sync.Mutex
	runCtx   context.Context
	ops      map[string]*op
	inflight map[string]bool
	awaiting map[string][]string      // lb → nodes whose applied report it waits for
	serving  map[string][]domain.Node // ACTIVE lb → its serving nodes (liveness watch)
	wg       sync.WaitGroup
}

type op struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a reconciler; Run starts it.
func New(cfg Config) *Reconciler {
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 500 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Reconciler{cfg: cfg, pol: cfg.Policy.WithDefaults(), log: cfg.Logger, q: newQueue(),
		ops: map[string]*op{}, inflight: map[string]bool{}, awaiting: map[string][]string{}, serving: map[string][]domain.Node{}}
}

// Kick queues a load balancer for reconciliation.
func (r *Reconciler) Kick(lbID string) {
	if events.ValidToken(lbID) {
		r.q.add(lbID)
	}
}

// KickNode queues every load balancer waiting for the node's report.
func (r *Reconciler) KickNode(nodeID string) {
	r.mu.Lock()
	var ids []string
	for lb, nodes := range r.awaiting {
		for _, n := range nodes {
			if n == nodeID {
				ids = append(ids, lb)
				break
			}
		}
	}
	r.mu.Unlock()
	for _, id := range ids {
		r.Kick(id)
	}
}

// InFlight returns the ids of load balancers whose workflow is not at rest.
func (r *Reconciler) InFlight() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.inflight))
	for id := range r.inflight {
		out = append(out, id)
	}
	return out
}

// Run works the queue until ctx ends, then cancels background operations
// and waits for them. Kicks made before Run are kept.
func (r *Reconciler) Run(ctx context.Context) error {
	r.mu.Lock()
	r.runCtx = ctx
	r.mu.Unlock()
	var workers sync.WaitGroup
	for range r.cfg.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for {
				id, ok := r.q.get()
				if !ok {
					return
				}
				if err := r.Reconcile(ctx, id); err != nil && ctx.Err() == nil {
					r.log.Warn("reconcile failed; retrying on the next tick", "loadbalancer", id, "err", err)
				}
				r.q.done(id)
			}
		}()
	}
	if r.cfg.NodeLostAfter > 0 && r.cfg.Heartbeats != nil {
		workers.Add(1)
		go func() {
			defer workers.Done()
			r.watchLiveness(ctx)
		}()
	}
	t := time.NewTicker(r.cfg.Tick)
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
			for _, id := range r.InFlight() {
				r.Kick(id)
			}
		}
	}
	r.q.close()
	workers.Wait()
	r.wg.Wait()
	return nil
}

func (r *Reconciler) load(ctx context.Context, id string) (*domain.LB, error) {
	evs, _, err := r.cfg.Store.Load(ctx, events.AggLoadBalancer, id)
	if err != nil {
		return nil, fmt.Errorf("load load balancer %s: %w", id, err)
	}
	return domain.Replay(id, evs), nil
}

func (r *Reconciler) observe(ctx context.Context, lb *domain.LB) (map[string]domain.Report, error) {
	obs := map[string]domain.Report{}
	for _, n := range lb.AwaitedNodes() {
		rep, ok, err := r.cfg.Reports.LastApplied(ctx, n)
		if err != nil {
			return nil, err
		}
		if ok {
			obs[n] = domain.Report{Version: rep.Version, Error: rep.Error}
		}
	}
	return obs, nil
}

// Reconcile takes every step the load balancer's workflow can take now.
func (r *Reconciler) Reconcile(ctx context.Context, id string) error {
	for range 32 {
		lb, err := r.load(ctx, id)
		if err != nil {
			return err
		}
		if lb.Phase() == domain.PhaseNew {
			r.track(id, nil, nil)
			return nil
		}
		obs, err := r.observe(ctx, lb)
		if err != nil {
			return err
		}
		acts := lb.Next(r.cfg.Now(), r.pol, obs)
		r.track(id, acts, lb.AwaitedNodes())
		r.mu.Lock()
		if lb.Phase() == domain.PhaseActive {
			r.serving[id] = lb.ServingNodes()
		} else {
			delete(r.serving, id)
		}
		r.mu.Unlock()
		progressed, err := r.execute(ctx, lb, acts)
		if err != nil || !progressed {
			return err
		}
	}
	return nil
}

func (r *Reconciler) track(id string, acts []domain.Action, awaited []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(acts) == 0 {
		delete(r.inflight, id)
	} else {
		r.inflight[id] = true
	}
	if len(awaited) == 0 {
		delete(r.awaiting, id)
	} else {
		r.awaiting[id] = awaited
	}
}

// execute does the actions; progressed reports whether the history changed
// (so the caller decides again at once).
func (r *Reconciler) execute(ctx context.Context, lb *domain.LB, acts []domain.Action) (progressed bool, err error) {
	log := r.log.With("loadbalancer", lb.ID(), "correlation", lb.Meta(Actor).CorrelationID)
	for _, a := range acts {
		switch a := a.(type) {
		case domain.RequestNodes:
			if r.cfg.Warm != nil {
				if claimed, err := r.claimWarm(ctx, lb, a, log); err != nil || claimed {
					return claimed, err
				}
			}
			datas := make([]any, len(a.Requests))
			for i := range a.Requests {
				datas[i] = &a.Requests[i]
			}
			return r.appendAt(ctx, lb, "vmrequest", datas...)
		case domain.EnsureNode:
			node := a.Node
			r.startOp("ensure/"+node.ID, lb.ID(), func(octx context.Context) { r.ensure(octx, lb.ID(), node, log) })
		case domain.DeleteNode:
			node := a.Node
			r.startOp("delete/"+node.ID, lb.ID(), func(octx context.Context) { r.deleteNode(octx, lb.ID(), node, log) })
		case domain.Publish:
			return r.publish(ctx, lb, a, log)
		case domain.RecordApplied:
			var datas []any
			for i := range a.Applied {
				datas = append(datas, &a.Applied[i])
			}
			if a.Activate != nil {
				datas = append(datas, a.Activate)
				log.Info("load balancer active", "version", a.Activate.Version, "vip", a.Activate.VIP, "nodes", a.Activate.Nodes)
			}
			return r.appendAt(ctx, lb, "applied", datas...)
		case domain.Fail:
			log.Warn("workflow step failed", "step", a.Failed.Step, "reason", a.Failed.Reason, "rollback", a.Rollback)
			if a.Rollback {
				f := a
				r.startOp("rollback/"+lb.ID(), lb.ID(), func(octx context.Context) { r.rollback(octx, lb.ID(), f, log) })
				return false, nil
			}
			return r.failInPlace(ctx, lb, a)
		case domain.Withdraw:
			if err := r.withdraw(ctx, lb); err != nil {
				return false, err
			}
			return r.appendAt(ctx, lb, "withdraw", &events.ConfigPublished{LoadBalancerID: lb.ID(), Version: a.Version, Nodes: []string{}, Deadline: r.cfg.Now().UTC()})
		case domain.Finish:
			log.Info("load balancer deleted")
			return r.appendAt(ctx, lb, "deleted", &events.ELBDeleted{})
		case domain.Wait:
		}
	}
	return false, nil
}

// appendAt appends to the load balancer at the version lb was decided on. A
// concurrency conflict is not an error: the caller reloads and decides again.
// The command id is derived from the version and the step, so a retried
// append of the same decision is stored once.
func (r *Reconciler) appendAt(ctx context.Context, lb *domain.LB, kind string, datas ...any) (bool, error) {
	if len(datas) == 0 {
		return false, nil
	}
	meta := lb.Meta(Actor)
	envs := make([]events.Envelope, 0, len(datas))
	for _, d := range datas {
		env, err := events.New(events.AggLoadBalancer, lb.ID(), d, meta)
		if err != nil {
			return false, err
		}
		envs = append(envs, env)
	}
	cmd := fmt.Sprintf("%s-%d-%s", lb.ID(), lb.Version(), kind)
	_, err := r.cfg.Store.Append(ctx, events.AggLoadBalancer, lb.ID(), lb.Version(), cmd, envs...)
	if errors.Is(err, eventstore.ErrConcurrency) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("append %s to %s: %w", kind, lb.ID(), err)
	}
	return true, nil
}

// appendWhen reloads the load balancer and appends what build returns (if
// anything), retrying on conflicts: the way background operations record
// their outcome against a history that moved on meanwhile.
func (r *Reconciler) appendWhen(ctx context.Context, lbID, kind string, build func(lb *domain.LB) []any) (*domain.LB, error) {
	for range 100 {
		lb, err := r.load(ctx, lbID)
		if err != nil {
			return nil, err
		}
		datas := build(lb)
		if len(datas) == 0 {
			return lb, nil
		}
		progressed, err := r.appendAt(ctx, lb, kind, datas...)
		if err != nil {
			return lb, err
		}
		_ = progressed
		fresh, err := r.load(ctx, lbID)
		if err != nil {
			return nil, err
		}
		if len(build(fresh)) == 0 {
			return fresh, nil
		}
	}
	return nil, fmt.Errorf("append %s to %s: too many conflicts", kind, lbID)
}

// startOp runs fn in the background unless an operation with the same key
// runs; when it ends the load balancer is kicked.
func (r *Reconciler) startOp(key, lbID string, fn func(ctx context.Context)) {
	r.mu.Lock()
	if _, ok := r.ops[key]; ok || r.runCtx == nil || r.runCtx.Err() != nil {
		r.mu.Unlock()
		return
	}
	octx, cancel := context.WithCancel(r.runCtx)
	o := &op{cancel: cancel, done: make(chan struct{})}
	r.ops[key] = o
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer close(o.done)
		fn(octx)
		r.mu.Lock()
		if r.ops[key] == o {
			delete(r.ops, key)
		}
		r.mu.Unlock()
		cancel()
		r.Kick(lbID)
	}()
}

// cancelOp stops a running operation and waits until it has returned.
func (r *Reconciler) cancelOp(key string) {
	r.mu.Lock()
	o, ok := r.ops[key]
	r.mu.Unlock()
	if !ok {
		return
	}
	o.cancel()
	<-o.done
}

func (r *Reconciler) ensure(ctx context.Context, lbID string, node domain.Node, log *slog.Logger) {
	dctx, cancel := context.WithDeadline(ctx, node.Deadline)
	defer cancel()
	got, err := r.cfg.Driver.Create(dctx, compute.Spec{NodeID: node.ID, Role: events.RoleTengine, Flavor: node.Flavor, Image: node.Image, AvailabilityZone: node.AvailabilityZone})
	if ctx.Err() != nil {
		return // cancelled (rollback, delete, shutdown): whoever cancelled owns the node now
	}
	if err != nil {
		log.Warn("node failed", "node", node.ID, "err", err)
		_, aerr := r.appendWhen(ctx, lbID, "vmfailed-"+node.ID, func(lb *domain.LB) []any {
			if n, ok := lb.Node(node.ID); ok && n.Status == domain.NodeRequested {
				return []any{&events.VMFailed{LoadBalancerID: lbID, NodeID: node.ID, Reason: err.Error()}}
			}
			return nil
		})
		if aerr != nil {
			log.Warn("recording node failure", "node", node.ID, "err", aerr)
		}
		return
	}
	lb, aerr := r.appendWhen(ctx, lbID, "vmready-"+node.ID, func(lb *domain.LB) []any {
		if n, ok := lb.Node(node.ID); ok && n.Status == domain.NodeRequested {
			return []any{&events.VMReady{LoadBalancerID: lbID, NodeID: node.ID, ServerID: got.ServerID, Address: got.Address}}
		}
		return nil
	})
	if aerr != nil {
		log.Warn("recording node ready", "node", node.ID, "err", aerr)
		return
	}
	if n, ok := lb.Node(node.ID); !ok || n.Status != domain.NodeReady {
		// The workflow gave up on the node meanwhile: do not leak it.
		dctx, cancel := context.WithTimeout(ctx, r.pol.DeleteTimeout)
		defer cancel()
		if err := r.cfg.Driver.Delete(dctx, node.ID); err != nil {
			log.Warn("deleting abandoned node", "node", node.ID, "err", err)
		}
		return
	}
	log.Info("node ready", "node", node.ID, "address", got.Address)
}

func (r *Reconciler) deleteNode(ctx context.Context, lbID string, node domain.Node, log *slog.Logger) {
	r.cancelOp("ensure/" + node.ID)
	if err := r.cfg.Desired.Delete(ctx, node.ID); err != nil {
		log.Warn("withdrawing node config", "node", node.ID, "err", err)
		return
	}
	dctx, cancel := context.WithTimeout(ctx, r.pol.DeleteTimeout)
	defer cancel()
	if err := r.cfg.Driver.Delete(dctx, node.ID); err != nil {
		if ctx.Err() == nil {
			log.Warn("deleting node", "node", node.ID, "err", err)
		}
		return
	}
	_, err := r.appendWhen(ctx, lbID, "vmdeleted-"+node.ID, func(lb *domain.LB) []any {
		if n, ok := lb.Node(node.ID); ok && n.Status != domain.NodeDeleted {
			return []any{&events.VMDeleted{LoadBalancerID: lbID, NodeID: node.ID, ServerID: n.ServerID}}
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		log.Warn("recording node deletion", "node", node.ID, "err", err)
	}
}

// withdraw takes the load balancer out of every node's desired config.
func (r *Reconciler) withdraw(ctx context.Context, lb *domain.LB) error {
	for _, n := range lb.Nodes() {
		if n.Status != domain.NodeDeleted {
			if err := r.cfg.Desired.Delete(ctx, n.ID); err != nil {
				return err
			}
		}
	}
	lvs, err := adapters.PairNodes(ctx, r.cfg.Store.Load, lb.Pair())
	if err != nil {
		return err
	}
	for _, n := range lvs {
		_, err := r.cfg.Desired.UpdateShared(ctx, n, events.RoleLVS, func(c *events.NodeConfig) bool {
			for _, e := range c.LoadBalancers {
				if e.ID == lb.ID() {
					c.LoadBalancers = domain.ReplaceLB(c.LoadBalancers, events.LBConfig{ID: lb.ID()}, true)
					return true
				}
			}
			return false
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *Reconciler) publish(ctx context.Context, lb *domain.LB, a domain.Publish, log *slog.Logger) (bool, error) {
	lvs, err := adapters.PairNodes(ctx, r.cfg.Store.Load, lb.Pair())
	if err != nil {
		return false, err
	}
	versions := map[string]uint64{}
	var nodes []string
	tcfg := lb.TengineConfig()
	for _, n := range a.Nodes {
		v, err := r.cfg.Desired.Update(ctx, n.ID, events.RoleTengine, func(c *events.NodeConfig) bool {
			c.Address, c.Draining = n.Address, false
			c.LoadBalancers = []events.LBConfig{tcfg}
			return true
		})
		if err != nil {
			return r.publishFailed(ctx, lb, err)
		}
		versions[n.ID] = v
		nodes = append(nodes, n.ID)
	}
	lcfg := lb.LVSConfig(a.Nodes)
	for _, n := range lvs {
		v, err := r.cfg.Desired.UpdateShared(ctx, n, events.RoleLVS, func(c *events.NodeConfig) bool {
			c.LoadBalancers = domain.ReplaceLB(c.LoadBalancers, lcfg, false)
			return true
		})
		if err != nil {
			return r.publishFailed(ctx, lb, err)
		}
		versions[n] = v
		nodes = append(nodes, n)
	}
	log.Info("config published", "version", a.Version, "nodes", adapters.FormatVersions(versions))
	return r.appendAt(ctx, lb, "publish", &events.ConfigPublished{LoadBalancerID: lb.ID(), Version: a.Version, Nodes: nodes,
		NodeVersions: versions, Deadline: r.cfg.Now().Add(r.pol.ApplyTimeout).UTC()})
}

// publishFailed turns an invalid computed config into a failed step; other
// errors are retried.
func (r *Reconciler) publishFailed(ctx context.Context, lb *domain.LB, err error) (bool, error) {
	if !errors.Is(err, adapters.ErrInvalidConfig) {
		return false, err
	}
	f := domain.Fail{Failed: events.ELBFailed{Reason: err.Error(), Step: domain.StepPublish,
		Log: append(lb.Log(), events.StepLogEntry{Time: r.cfg.Now().UTC(), Step: domain.StepPublish, Message: err.Error()})}, Rollback: !lb.EverActive()}
	if f.Rollback {
		r.startOp("rollback/"+lb.ID(), lb.ID(), func(octx context.Context) { r.rollback(octx, lb.ID(), f, r.log.With("loadbalancer", lb.ID())) })
		return false, nil
	}
	return r.failInPlace(ctx, lb, f)
}

// failInPlace ends a failed update in ERROR: nodes that were being built are
// abandoned (VMFailed; the ERROR clean-up deletes them), the others keep
// serving the last good config.
func (r *Reconciler) failInPlace(ctx context.Context, lb *domain.LB, f domain.Fail) (bool, error) {
	for _, id := range f.Abandon {
		r.cancelOp("ensure/" + id)
	}
	var datas []any
	for _, id := range f.Abandon {
		datas = append(datas, &events.VMFailed{LoadBalancerID: lb.ID(), NodeID: id, Reason: "abandoned: " + f.Failed.Reason})
	}
	failed := f.Failed
	datas = append(datas, &failed)
	return r.appendAt(ctx, lb, "fail", datas...)
}

// rollback undoes a failed create: build operations stop, the config is
// withdrawn, every node is deleted, and VMDeleted for each plus ELBFailed are
// appended in one commit. The allocator then returns the VIP.
func (r *Reconciler) rollback(ctx context.Context, lbID string, f domain.Fail, log *slog.Logger) {
	lb, err := r.load(ctx, lbID)
	if err != nil {
		log.Warn("rollback", "err", err)
		return
	}
	if p := lb.Phase(); p != domain.PhaseCreating && p != domain.PhaseUpdating {
		return
	}
	nodes := lb.Nodes()
	for _, n := range nodes {
		r.cancelOp("ensure/" + n.ID)
	}
	if err := r.withdraw(ctx, lb); err != nil {
		log.Warn("rollback: withdrawing config", "err", err)
		return
	}
	var mu sync.Mutex
	deleted := map[string]bool{}
	var failures []string
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n.Status == domain.NodeDeleted {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, r.pol.DeleteTimeout)
			defer cancel()
			err := r.cfg.Driver.Delete(dctx, n.ID)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v", n.ID, err))
				return
			}
			deleted[n.ID] = true
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	now := r.cfg.Now().UTC()
	failed := f.Failed
	failed.Log = append(failed.Log, events.StepLogEntry{Time: now, Step: f.Failed.Step, Message: fmt.Sprintf("rolled back: config withdrawn, %d node(s) deleted, vip returned to the pool", len(deleted))})
	if len(failures) > 0 {
		failed.Log = append(failed.Log, events.StepLogEntry{Time: now, Step: domain.StepDeleteVM, Message: fmt.Sprintf("node deletion failed, retrying: %v", failures)})
	}
	_, err = r.appendWhen(ctx, lbID, "rollback", func(lb *domain.LB) []any {
		if p := lb.Phase(); p != domain.PhaseCreating && p != domain.PhaseUpdating {
			return nil
		}
		var datas []any
		for _, n := range lb.Nodes() {
			if deleted[n.ID] && n.Status != domain.NodeDeleted {
				datas = append(datas, &events.VMDeleted{LoadBalancerID: lbID, NodeID: n.ID, ServerID: n.ServerID})
			}
		}
		return append(datas, &failed)
	})
	if err != nil && ctx.Err() == nil {
		log.Warn("rollback: recording", "err", err)
		return
	}
	log.Warn("create rolled back", "step", failed.Step, "reason", failed.Reason)
}

// watchLiveness declares serving nodes lost when their agent went silent.
func (r *Reconciler) watchLiveness(ctx context.Context) {
	t := time.NewTicker(max(r.cfg.NodeLostAfter/4, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		snapshot := make(map[string][]domain.Node, len(r.serving))
		for id, nodes := range r.serving {
			snapshot[id] = nodes
		}
		r.mu.Unlock()
		now := r.cfg.Now()
		for lbID, nodes := range snapshot {
			for _, n := range nodes {
				last, _, err := r.cfg.Heartbeats.LastHeartbeat(ctx, n.ID)
				if err != nil {
					continue
				}
				seen := last
				if n.ReadyAt.After(seen) {
					seen = n.ReadyAt
				}
				if now.Sub(seen) <= r.cfg.NodeLostAfter {
					continue
				}
				r.log.Warn("node lost: no heartbeat", "loadbalancer", lbID, "node", n.ID, "last_seen", last)
				_, err = r.appendWhen(ctx, lbID, "lost-"+n.ID, func(lb *domain.LB) []any {
					if cur, ok := lb.Node(n.ID); ok && cur.Status == domain.NodeReady && !cur.Retire {
						return []any{&events.NodeLost{LoadBalancerID: lbID, NodeID: n.ID, LastSeen: last}}
					}
					return nil
				})
				if err != nil && ctx.Err() == nil {
					r.log.Warn("recording node loss", "node", n.ID, "err", err)
				}
				r.Kick(lbID)
			}
		}
	}
}

// SweepOrphans deletes driver nodes that no workflow owns: nodes of deleted
// load balancers or nodes the load balancer's history does not list as live.
// Every node is requested in the log before it is built, so a node the log
// does not know is an orphan (e.g. built by a provisioner that crashed).
func (r *Reconciler) SweepOrphans(ctx context.Context) (int, error) {
	nodes, err := r.cfg.Driver.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, node := range nodes {
		lbID, ok := domain.LBOfNode(node.ID)
		if !ok {
			continue // not a workflow node (warm pool nodes are swept by the pool)
		}
		lb, err := r.load(ctx, lbID)
		if err != nil {
			return n, err
		}
		if st, known := lb.Node(node.ID); known && st.Status != domain.NodeDeleted {
			continue
		}
		r.log.Warn("deleting orphan node", "node", node.ID, "loadbalancer", lbID)
		dctx, cancel := context.WithTimeout(ctx, r.pol.DeleteTimeout)
		err = r.cfg.Driver.Delete(dctx, node.ID)
		cancel()
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
