package domain

import (
	"slices"
	"time"

	"github.com/elbcloud/elb/events"
)

// defaultNodes is the node count of a load balancer that asked for none (the
// provisioner's default).
const defaultNodes = 1

// LB is a load balancer as the scaler sees it, folded from the load
// balancer aggregate's events. The zero value is a load balancer that does
// not exist yet.
type LB struct {
	id        string
	version   uint64
	exists    bool
	active    bool
	deleted   bool
	desired   int
	specMin   int
	specMax   int
	serving   []string
	draining  map[string]bool
	known     []string // every node ever requested or served, in order
	lastScale time.Time
}

// NewLB returns the empty state of load balancer id.
func NewLB(id string) *LB { return &LB{id: id, draining: map[string]bool{}} }

// ID is the load balancer id.
func (lb *LB) ID() string { return lb.id }

// Version is the aggregate version of the last applied event.
func (lb *LB) Version() uint64 { return lb.version }

// Active reports whether the load balancer serves traffic and may be scaled:
// it reached ACTIVE and has neither failed nor started being deleted since.
func (lb *LB) Active() bool { return lb.exists && lb.active && !lb.deleted }

// Deleted reports whether the load balancer is being or has been deleted.
func (lb *LB) Deleted() bool { return lb.deleted }

// Desired is the node count last asked for (spec or last decision).
func (lb *LB) Desired() int { return lb.desired }

// LastScale is when the last scaling decision was taken (zero: never).
func (lb *LB) LastScale() time.Time { return lb.lastScale }

// Override returns the spec bounds for Policy.Effective.
func (lb *LB) Override(set *events.ScalePolicySet) Override {
	return Override{SpecMin: lb.specMin, SpecMax: lb.specMax, Set: set}
}

// Serving lists the nodes that carry traffic and are not being drained, in
// the order they were published.
func (lb *LB) Serving() []string {
	out := make([]string, 0, len(lb.serving))
	for _, n := range lb.serving {
		if !lb.draining[n] {
			out = append(out, n)
		}
	}
	return out
}

// Nodes lists every node ever attached to the load balancer.
func (lb *LB) Nodes() []string { return slices.Clone(lb.known) }

func (lb *LB) addKnown(id string) {
	if id != "" && !slices.Contains(lb.known, id) {
		lb.known = append(lb.known, id)
	}
}

// Apply folds one event of the load balancer aggregate into the state. It is
// the only place the state changes; unknown event types are ignored.
func (lb *LB) Apply(e events.Event) {
	lb.version = e.AggregateVersion
	switch d := e.Data.(type) {
	case *events.ELBRequested:
		lb.exists = true
		lb.desired = max(d.Spec.L7Nodes, defaultNodes)
		lb.specMin, lb.specMax = d.Spec.MinL7Nodes, d.Spec.MaxL7Nodes
	case *events.ELBUpdated:
		lb.specMin, lb.specMax = d.Spec.MinL7Nodes, d.Spec.MaxL7Nodes
	case *events.VMRequested:
		lb.addKnown(d.NodeID)
	case *events.VMReady:
		lb.addKnown(d.NodeID)
	case *events.VMDeleted:
		lb.serving = slices.DeleteFunc(lb.serving, func(n string) bool { return n == d.NodeID })
		lb.known = slices.DeleteFunc(lb.known, func(n string) bool { return n == d.NodeID })
		delete(lb.draining, d.NodeID)
	case *events.ELBActive:
		lb.active = true
		lb.serving = slices.Clone(d.Nodes)
		for _, n := range d.Nodes {
			lb.addKnown(n)
		}
		// A node no longer published has finished draining.
		for n := range lb.draining {
			if !slices.Contains(d.Nodes, n) {
				delete(lb.draining, n)
			}
		}
	case *events.ELBFailed:
		lb.active = false
	case *events.ELBDeleteRequested, *events.ELBDeleted:
		lb.deleted = true
		lb.active = false
	case *events.ScaleOutDecided:
		lb.desired = d.To
		lb.lastScale = e.OccurredAt
	case *events.ScaleInDecided:
		lb.desired = d.To
		lb.lastScale = e.OccurredAt
		for _, n := range d.Nodes {
			lb.draining[n] = true
		}
	}
}
