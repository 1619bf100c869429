package domain

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/elbcloud/elb/events"
)

// Action is one step Next asks the application to take.
type Action interface{ action() }

// RequestNodes appends VMRequested for new nodes.
type RequestNodes struct{ Requests []events.VMRequested }

// EnsureNode asks the compute driver for a node until it is ready or its
// deadline passes (a background operation; the driver call is idempotent).
type EnsureNode struct{ Node Node }

// DeleteNode removes a node's desired config and the node itself, then
// appends VMDeleted (a background operation).
type DeleteNode struct{ Node Node }

// Publish computes and writes every node's desired config for the serving
// nodes, then appends ConfigPublished with Version.
type Publish struct {
	Version uint64
	Nodes   []Node
}

// RecordApplied appends ConfigApplied for nodes that reported the published
// version, and ELBActive when every node has.
type RecordApplied struct {
	Applied  []events.ConfigApplied
	Activate *events.ELBActive
}

// Fail ends the current workflow in ERROR. With Rollback, everything done so
// far is undone first (config withdrawn, every node deleted) and the VMDeleted
// events go in the same append as ELBFailed; Abandon lists requested nodes
// that never became ready (they get VMFailed when not rolled back).
type Fail struct {
	Failed   events.ELBFailed
	Rollback bool
	Abandon  []string
}

// Withdraw removes the load balancer from every node's desired config and
// appends ConfigPublished with no nodes (the delete workflow's first step).
type Withdraw struct{ Version uint64 }

// Finish appends ELBDeleted.
type Finish struct{}

// Wait says nothing can be done before Until (or before something happens).
type Wait struct{ Until time.Time }

func (RequestNodes) action()  {}
func (EnsureNode) action()    {}
func (DeleteNode) action()    {}
func (Publish) action()       {}
func (RecordApplied) action() {}
func (Fail) action()          {}
func (Withdraw) action()      {}
func (Finish) action()        {}
func (Wait) action()          {}

// Next decides what to do now. obs holds the last applied report of the
// awaited nodes (AwaitedNodes). An empty result means the workflow is at rest.
func (lb *LB) Next(now time.Time, pol Policy, obs map[string]Report) []Action {
	pol = pol.WithDefaults()
	switch lb.phase {
	case PhaseNew, PhaseDeleted:
		return nil
	case PhaseDeleting:
		return lb.nextDelete(now, pol)
	case PhaseError:
		if lb.deleteRequested {
			return lb.nextDelete(now, pol)
		}
		if lb.unanswered {
			return []Action{Fail{Failed: lb.failEvent(now, StepCreate, "the create of this load balancer was rolled back (it has no VIP and no nodes): delete it and create it again")}}
		}
		return lb.cleanup()
	}
	if f := lb.failure(now, pol, obs); f != nil {
		return []Action{*f}
	}
	if lb.vip == "" {
		return []Action{Wait{Until: lb.allocDeadline(pol)}}
	}
	live := lb.liveNodes()
	if missing := lb.desired - len(live); missing > 0 {
		reqs := make([]events.VMRequested, 0, missing)
		for i := range missing {
			reqs = append(reqs, events.VMRequested{LoadBalancerID: lb.id, NodeID: NodeIDFor(lb.id, len(lb.nodes)+i+1),
				Flavor: pol.Flavor, Image: pol.Image, AvailabilityZone: lb.spec.AvailabilityZone, Deadline: now.Add(pol.VMReadyTimeout)})
		}
		return []Action{RequestNodes{Requests: reqs}}
	}
	var acts []Action
	pending := false
	for _, n := range live {
		if n.Status == NodeRequested {
			acts = append(acts, EnsureNode{Node: *n})
			pending = true
		}
	}
	if pending {
		return acts
	}
	serving := lb.ServingNodes()
	if lb.needPublish(serving) {
		return []Action{Publish{Version: lb.version, Nodes: serving}}
	}
	p := lb.published
	var applied []events.ConfigApplied
	all := true
	for n, need := range p.NodeVersions {
		if _, done := p.Applied[n]; done {
			continue
		}
		if r, ok := obs[n]; ok && r.Version >= need && r.Error == "" {
			applied = append(applied, events.ConfigApplied{LoadBalancerID: lb.id, NodeID: n, Version: r.Version})
			continue
		}
		all = false
	}
	sort.Slice(applied, func(i, j int) bool { return applied[i].NodeID < applied[j].NodeID })
	rec := RecordApplied{Applied: applied}
	if all && (lb.phase != PhaseActive || lb.activeVersion != p.Version) {
		rec.Activate = &events.ELBActive{Version: p.Version, VIP: lb.vip, Nodes: lb.publishedTengine()}
	}
	if len(rec.Applied) > 0 || rec.Activate != nil {
		return []Action{rec}
	}
	if !all {
		return []Action{Wait{Until: p.Deadline}}
	}
	// At rest and ACTIVE: remove nodes the config no longer uses, once their
	// open connections had the listeners' drain timeout to finish.
	if until := lb.activeAt.Add(lb.drainTimeout()); now.Before(until) && len(lb.garbage()) > 0 {
		return []Action{Wait{Until: until}}
	}
	return lb.garbage()
}

// drainTimeout is the longest connection drain timeout of the listeners.
func (lb *LB) drainTimeout() time.Duration {
	d := 0
	for _, l := range lb.listeners {
		d = max(d, l.ConnectionDrainTimeout)
	}
	return time.Duration(d) * time.Second
}

// garbage lists deletions of nodes that are retired or failed and not part
// of the published config.
func (lb *LB) garbage() []Action {
	inConfig := map[string]bool{}
	for _, id := range lb.publishedTengine() {
		if lb.published != nil && !lb.published.Withdrawn {
			inConfig[id] = true
		}
	}
	var acts []Action
	for _, n := range lb.nodes {
		if n.Status == NodeDeleted || inConfig[n.ID] {
			continue
		}
		if n.Retire || n.Status == NodeFailed {
			acts = append(acts, DeleteNode{Node: *n})
		}
	}
	return acts
}

// cleanup is what an ERROR load balancer still does: after a rolled-back
// create, delete any straggler node; after a failed update, delete failed and
// retired nodes the config does not use.
func (lb *LB) cleanup() []Action {
	if lb.everActive {
		return lb.garbage()
	}
	var acts []Action
	for _, n := range lb.nodes {
		if n.Status != NodeDeleted {
			acts = append(acts, DeleteNode{Node: *n})
		}
	}
	return acts
}

func (lb *LB) nextDelete(now time.Time, pol Policy) []Action {
	if lb.published == nil || !lb.published.Withdrawn {
		return []Action{Withdraw{Version: lb.version}}
	}
	var acts []Action
	var left []string
	for _, n := range lb.nodes {
		if n.Status != NodeDeleted {
			acts = append(acts, DeleteNode{Node: *n})
			left = append(left, n.ID)
		}
	}
	if len(acts) == 0 {
		return []Action{Finish{}}
	}
	if lb.phase == PhaseDeleting && now.After(lb.deleteDeadlineOr(pol)) {
		return []Action{Fail{Failed: lb.failEvent(now, StepDeleteVM, fmt.Sprintf("nodes %s not deleted within the delete deadline; still trying", strings.Join(left, ", ")))}}
	}
	return acts
}

func (lb *LB) deleteDeadlineOr(pol Policy) time.Time {
	if !lb.deleteDeadline.IsZero() {
		return lb.deleteDeadline
	}
	return lb.deleteAt.Add(pol.DeleteTimeout)
}

func (lb *LB) allocDeadline(pol Policy) time.Time {
	d := lb.requestedAt.Add(pol.AllocateTimeout)
	if cd := lb.createDeadline(pol); cd.Before(d) {
		return cd
	}
	return d
}

func (lb *LB) createDeadline(pol Policy) time.Time {
	if !lb.deadline.IsZero() {
		return lb.deadline
	}
	return lb.requestedAt.Add(pol.CreateTimeout)
}

// step is the name of the step the workflow is in.
func (lb *LB) step() string {
	if lb.vip == "" && lb.phase == PhaseCreating {
		return StepAllocateVIP
	}
	for _, n := range lb.liveNodes() {
		if n.Status == NodeRequested {
			return StepCreateVM
		}
	}
	if len(lb.liveNodes()) < lb.desired {
		return StepCreateVM
	}
	return StepApplyConfig
}

func (lb *LB) failEvent(now time.Time, step, reason string) events.ELBFailed {
	log := lb.Log()
	log = append(log, events.StepLogEntry{Time: now, Step: step, Message: reason})
	return events.ELBFailed{Reason: reason, Step: step, Log: log}
}

// failure detects a failed or timed-out step of a create or update.
func (lb *LB) failure(now time.Time, pol Policy, obs map[string]Report) *Fail {
	rollback := !lb.everActive
	mk := func(step, reason string) *Fail {
		f := &Fail{Failed: lb.failEvent(now, step, reason), Rollback: rollback}
		for _, n := range lb.liveNodes() {
			if n.Status == NodeRequested {
				f.Abandon = append(f.Abandon, n.ID)
			}
		}
		return f
	}
	if lb.allocFailed != "" {
		return mk(StepAllocateVIP, "vip allocation failed: "+lb.allocFailed)
	}
	if lb.phase == PhaseCreating && lb.vip == "" && now.After(lb.allocDeadline(pol)) {
		return mk(StepAllocateVIP, fmt.Sprintf("no vip allocated within %s", lb.allocDeadline(pol).Sub(lb.requestedAt).Round(time.Millisecond)))
	}
	for _, n := range lb.nodes {
		if n.Status == NodeFailed && !n.Retire {
			return mk(StepCreateVM, fmt.Sprintf("node %s failed: %s", n.ID, n.FailReason))
		}
	}
	for _, n := range lb.liveNodes() {
		if n.Status == NodeRequested && !n.Deadline.IsZero() && now.After(n.Deadline) {
			return mk(StepCreateVM, fmt.Sprintf("node %s not ready by its deadline %s", n.ID, n.Deadline.Format(time.RFC3339)))
		}
	}
	if p := lb.published; p != nil && !p.Withdrawn && !lb.needPublish(lb.ServingNodes()) && now.After(p.Deadline) {
		var late, errs []string
		for _, n := range lb.AwaitedNodes() {
			r, ok := obs[n]
			if ok && r.Version >= p.NodeVersions[n] && r.Error == "" {
				continue
			}
			late = append(late, n)
			if ok && r.Error != "" {
				errs = append(errs, fmt.Sprintf("%s: %s", n, r.Error))
			}
		}
		if len(late) > 0 {
			reason := fmt.Sprintf("config v%d not applied by %s before its deadline", p.Version, strings.Join(late, ", "))
			if len(errs) > 0 {
				reason += " (last errors: " + strings.Join(errs, "; ") + ")"
			}
			return mk(StepApplyConfig, reason)
		}
	}
	if lb.phase == PhaseCreating && now.After(lb.createDeadline(pol)) {
		return mk(lb.step(), "create deadline passed")
	}
	return nil
}
