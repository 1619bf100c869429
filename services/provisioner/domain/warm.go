package domain

import (
	"strconv"
	"time"

	"github.com/elbcloud/elb/events"
)

// WarmPoolID is the id of the node aggregate that records the warm pool.
const WarmPoolID = "warmpool"

// warmNodePrefix starts the ids of warm pool nodes.
const warmNodePrefix = "wp-"

// WarmNode is one pre-provisioned node.
type WarmNode struct {
	ID, ServerID, Address string
	Status                NodeStatus
	ClaimedBy             string
	Deadline              time.Time
}

// WarmPool is the warm pool aggregate: idle tengine nodes booted ahead of
// demand, each handed to at most one load balancer (NodeClaimed).
type WarmPool struct {
	version   uint64
	requested int
	nodes     map[string]*WarmNode
	order     []string
}

// NewWarmPool returns the empty pool.
func NewWarmPool() *WarmPool { return &WarmPool{nodes: map[string]*WarmNode{}} }

// Version is the aggregate version.
func (w *WarmPool) Version() uint64 { return w.version }

// Apply folds one event.
func (w *WarmPool) Apply(e events.Event) {
	w.version = e.AggregateVersion
	switch d := e.Data.(type) {
	case *events.VMRequested:
		if _, ok := w.nodes[d.NodeID]; !ok {
			w.requested++
			w.nodes[d.NodeID] = &WarmNode{ID: d.NodeID, Status: NodeRequested, Deadline: d.Deadline}
			w.order = append(w.order, d.NodeID)
		}
	case *events.VMReady:
		if n, ok := w.nodes[d.NodeID]; ok && n.Status == NodeRequested {
			n.Status, n.ServerID, n.Address = NodeReady, d.ServerID, d.Address
		}
	case *events.VMFailed:
		if n, ok := w.nodes[d.NodeID]; ok && n.Status == NodeRequested {
			n.Status = NodeFailed
		}
	case *events.VMDeleted:
		if n, ok := w.nodes[d.NodeID]; ok {
			n.Status = NodeDeleted
		}
	case *events.NodeClaimed:
		if n, ok := w.nodes[d.NodeID]; ok && n.ClaimedBy == "" {
			n.ClaimedBy = d.LoadBalancerID
		}
	}
}

// NextID is the id of the next node to request.
func (w *WarmPool) NextID() string { return warmNodePrefix + strconv.Itoa(w.requested+1) }

// Nodes returns copies of every node in request order.
func (w *WarmPool) Nodes() []WarmNode {
	out := make([]WarmNode, 0, len(w.order))
	for _, id := range w.order {
		out = append(out, *w.nodes[id])
	}
	return out
}

// Node returns one node.
func (w *WarmPool) Node(id string) (WarmNode, bool) {
	n, ok := w.nodes[id]
	if !ok {
		return WarmNode{}, false
	}
	return *n, true
}

// Idle counts unclaimed nodes that are ready or booting.
func (w *WarmPool) Idle() int {
	k := 0
	for _, n := range w.nodes {
		if n.ClaimedBy == "" && (n.Status == NodeRequested || n.Status == NodeReady) {
			k++
		}
	}
	return k
}

// ClaimFor returns the node to hand to lbID: one it already claimed but
// does not list yet (a crash between the two appends), else the oldest idle
// ready node. claimed says whether NodeClaimed still has to be appended.
func (w *WarmPool) ClaimFor(lbID string, known func(nodeID string) bool) (n WarmNode, claimed, ok bool) {
	for _, id := range w.order {
		c := w.nodes[id]
		if c.ClaimedBy == lbID && c.Status == NodeReady && !known(id) {
			return *c, true, true
		}
	}
	for _, id := range w.order {
		c := w.nodes[id]
		if c.ClaimedBy == "" && c.Status == NodeReady {
			return *c, false, true
		}
	}
	return WarmNode{}, false, false
}

// IsWarmNode reports whether a node id is a warm pool node's.
func IsWarmNode(id string) bool {
	return len(id) > len(warmNodePrefix) && id[:len(warmNodePrefix)] == warmNodePrefix
}
