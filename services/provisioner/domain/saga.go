// Package domain holds the provisioning workflow of one load balancer as a
// process manager: LB's state is only ever the result of applying the load
// balancer aggregate's events (Apply, one switch that also replays history),
// and Next decides, from that state, the clock and what the agents reported,
// which steps to take. Nothing here does I/O.
package domain

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/elbcloud/elb/events"
)

// Phase is the load balancer's provisioning status.
type Phase string

// Phases, named as the API shows them.
const (
	PhaseNew      Phase = ""
	PhaseCreating Phase = "PENDING_CREATE"
	PhaseActive   Phase = "ACTIVE"
	PhaseUpdating Phase = "PENDING_UPDATE"
	PhaseError    Phase = "ERROR"
	PhaseDeleting Phase = "PENDING_DELETE"
	PhaseDeleted  Phase = "DELETED"
)

// Workflow step names, as they appear in ELBFailed.Step and the step log.
const (
	StepAllocateVIP  = "allocate_vip"
	StepCreateVM     = "create_vm"
	StepPublish      = "publish_config"
	StepApplyConfig  = "apply_config"
	StepDeleteVM     = "delete_vm"
	StepCreate       = "create"
	maxLogEntries    = 64
	nodeIDPrefix     = "tg-"
	defaultNodeCount = 1
)

// NodeStatus is where a tengine node is in its life.
type NodeStatus int

// Node statuses.
const (
	NodeRequested NodeStatus = iota + 1
	NodeReady
	NodeFailed
	NodeDeleted
)

// Node is one tengine node of a load balancer.
type Node struct {
	ID               string
	ServerID         string
	Address          string
	Status           NodeStatus
	Flavor           string
	Image            string
	AvailabilityZone string
	Deadline         time.Time
	ReadyAt          time.Time
	FailReason       string
	// Retire marks a node to be removed once the config no longer uses it
	// (node lost, failover, scale-in, or a failed node after ELBFailed).
	Retire bool
}

// Live reports whether the node exists or is being built.
func (n Node) Live() bool { return n.Status == NodeRequested || n.Status == NodeReady }

// Published is the last config version written for the load balancer.
type Published struct {
	Version      uint64
	Nodes        []string
	NodeVersions map[string]uint64
	Deadline     time.Time
	Applied      map[string]uint64
	Withdrawn    bool
}

// Policy holds the deadlines and defaults the workflow decides with.
type Policy struct {
	// AllocateTimeout bounds waiting for the allocator.
	AllocateTimeout time.Duration
	// VMReadyTimeout bounds one node's boot.
	VMReadyTimeout time.Duration
	// ApplyTimeout bounds the agents applying one config version.
	ApplyTimeout time.Duration
	// DeleteTimeout bounds a delete; after it the load balancer shows ERROR
	// while node deletion goes on.
	DeleteTimeout time.Duration
	// CreateTimeout is the whole create's deadline when ELBRequested has none.
	CreateTimeout time.Duration
	// Flavor and Image go into VMRequested (the Nova driver's defaults apply
	// when empty).
	Flavor, Image string
}

// WithDefaults fills zero fields.
func (p Policy) WithDefaults() Policy {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&p.AllocateTimeout, 30*time.Second)
	def(&p.VMReadyTimeout, 120*time.Second)
	def(&p.ApplyTimeout, 30*time.Second)
	def(&p.DeleteTimeout, 120*time.Second)
	def(&p.CreateTimeout, p.AllocateTimeout+p.VMReadyTimeout+p.ApplyTimeout+30*time.Second)
	return p
}

// Report is what a node last reported about applying its config.
type Report struct {
	Version uint64
	Error   string
}

// LB is the workflow state of one load balancer.
type LB struct {
	id            string
	version       uint64
	phase         Phase
	spec          events.LoadBalancerSpec
	requestedAt   time.Time
	deadline      time.Time
	correlationID string
	projectID     string
	lastEventID   string

	vip, vipPool, pair string
	allocFailed        string

	everActive    bool
	activeVersion uint64
	activeAt      time.Time
	desired       int
	nodes         []*Node
	byID          map[string]*Node

	listeners map[string]events.ListenerSpec
	pools     map[string]events.PoolSpec
	members   map[string]events.MemberSpec
	monitors  map[string]events.HealthMonitorSpec

	treeVersion     uint64
	published       *Published
	deleteRequested bool
	// unanswered is a change to a load balancer whose create was rolled
	// back: the API shows PENDING_UPDATE until it gets an answer.
	unanswered     bool
	deleteAt       time.Time
	deleteDeadline time.Time
	failed         *events.ELBFailed
	log            []events.StepLogEntry
}

// NewLB returns the empty state of load balancer id.
func NewLB(id string) *LB {
	return &LB{id: id, byID: map[string]*Node{}, listeners: map[string]events.ListenerSpec{},
		pools: map[string]events.PoolSpec{}, members: map[string]events.MemberSpec{}, monitors: map[string]events.HealthMonitorSpec{}}
}

// Replay builds the state from a history.
func Replay(id string, evs []events.Event) *LB {
	lb := NewLB(id)
	for _, e := range evs {
		lb.Apply(e)
	}
	return lb
}

// ID is the load balancer id.
func (lb *LB) ID() string { return lb.id }

// Version is the aggregate version the state reflects.
func (lb *LB) Version() uint64 { return lb.version }

// Phase is the provisioning status.
func (lb *LB) Phase() Phase { return lb.phase }

// VIP is the allocated address ("" before allocation).
func (lb *LB) VIP() string { return lb.vip }

// Pair is the LVS pair carrying the VIP.
func (lb *LB) Pair() string { return lb.pair }

// Failure is the last ELBFailed, if the load balancer is in ERROR.
func (lb *LB) Failure() *events.ELBFailed { return lb.failed }

// EverActive reports whether the load balancer was ever ACTIVE.
func (lb *LB) EverActive() bool { return lb.everActive }

// Meta returns the metadata for an event caused by the workflow.
func (lb *LB) Meta(actor string) events.Meta {
	return events.Meta{Actor: actor, ProjectID: lb.projectID, CorrelationID: lb.correlationID, CausationID: lb.lastEventID}
}

// Nodes returns copies of every node, in request order.
func (lb *LB) Nodes() []Node {
	out := make([]Node, len(lb.nodes))
	for i, n := range lb.nodes {
		out[i] = *n
	}
	return out
}

// Node returns a copy of one node.
func (lb *LB) Node(id string) (Node, bool) {
	n, ok := lb.byID[id]
	if !ok {
		return Node{}, false
	}
	return *n, true
}

// Published returns a copy of the last published config record.
func (lb *LB) Published() *Published {
	if lb.published == nil {
		return nil
	}
	p := *lb.published
	return &p
}

// Log returns the step log.
func (lb *LB) Log() []events.StepLogEntry { return append([]events.StepLogEntry(nil), lb.log...) }

func (lb *LB) logf(t time.Time, step, format string, args ...any) {
	lb.log = append(lb.log, events.StepLogEntry{Time: t, Step: step, Message: fmt.Sprintf(format, args...)})
	if len(lb.log) > maxLogEntries {
		lb.log = lb.log[len(lb.log)-maxLogEntries:]
	}
}

func (lb *LB) startChange() {
	switch {
	case lb.phase == PhaseError && !lb.everActive && !lb.deleteRequested:
		lb.unanswered = true
	case lb.phase == PhaseActive:
		lb.phase = PhaseUpdating
	case lb.phase == PhaseError && lb.everActive && !lb.deleteRequested:
		lb.phase = PhaseUpdating
		lb.failed = nil
	}
}

func (lb *LB) treeChanged(e events.Event) {
	lb.treeVersion = e.AggregateVersion
	lb.startChange()
}

// Apply folds one event into the state. It is the only place state changes
// and it never fails: events are facts.
func (lb *LB) Apply(e events.Event) {
	lb.version = e.AggregateVersion
	lb.lastEventID = e.ID
	t := e.OccurredAt
	switch d := e.Data.(type) {
	case *events.ELBRequested:
		lb.phase = PhaseCreating
		lb.spec = d.Spec
		lb.requestedAt = t
		lb.deadline = d.Deadline
		lb.correlationID = e.CorrelationID
		if lb.correlationID == "" {
			lb.correlationID = e.ID
		}
		lb.projectID = e.ProjectID
		lb.desired = max(d.Spec.L7Nodes, defaultNodeCount)
		lb.treeVersion = e.AggregateVersion
		lb.logf(t, StepCreate, "load balancer requested with %d tengine node(s)", lb.desired)
	case *events.ELBUpdated:
		lb.spec = d.Spec
	case *events.VIPAllocated:
		if lb.vip == "" {
			lb.vip, lb.vipPool, lb.pair = d.Address, d.Pool, d.LVSPair
			lb.logf(t, StepAllocateVIP, "vip %s allocated from pool %s on lvs pair %q", d.Address, d.Pool, d.LVSPair)
		}
	case *events.AllocationFailed:
		lb.allocFailed = d.Reason
		lb.logf(t, StepAllocateVIP, "vip allocation failed: %s", d.Reason)
	case *events.VMRequested:
		if _, ok := lb.byID[d.NodeID]; !ok {
			n := &Node{ID: d.NodeID, Status: NodeRequested, Flavor: d.Flavor, Image: d.Image, AvailabilityZone: d.AvailabilityZone, Deadline: d.Deadline}
			lb.nodes = append(lb.nodes, n)
			lb.byID[d.NodeID] = n
			lb.logf(t, StepCreateVM, "node %s requested", d.NodeID)
		}
	case *events.VMReady:
		if n, ok := lb.byID[d.NodeID]; ok && n.Status == NodeRequested {
			n.Status, n.ServerID, n.Address, n.ReadyAt = NodeReady, d.ServerID, d.Address, t
			lb.logf(t, StepCreateVM, "node %s ready at %s", d.NodeID, d.Address)
		}
	case *events.VMFailed:
		if n, ok := lb.byID[d.NodeID]; ok && n.Status == NodeRequested {
			n.Status, n.FailReason = NodeFailed, d.Reason
			lb.logf(t, StepCreateVM, "node %s failed: %s", d.NodeID, d.Reason)
		}
	case *events.VMDeleted:
		if n, ok := lb.byID[d.NodeID]; ok && n.Status != NodeDeleted {
			n.Status = NodeDeleted
			lb.logf(t, StepDeleteVM, "node %s deleted", d.NodeID)
		}
	case *events.ListenerCreated:
		lb.listeners[d.ListenerID] = d.Spec
		lb.treeChanged(e)
	case *events.ListenerUpdated:
		lb.listeners[d.ListenerID] = d.Spec
		lb.treeChanged(e)
	case *events.ListenerDeleted:
		delete(lb.listeners, d.ListenerID)
		lb.treeChanged(e)
	case *events.PoolCreated:
		lb.pools[d.PoolID] = d.Spec
		lb.treeChanged(e)
	case *events.PoolUpdated:
		lb.pools[d.PoolID] = d.Spec
		lb.treeChanged(e)
	case *events.PoolDeleted:
		delete(lb.pools, d.PoolID)
		for id, m := range lb.members {
			if m.PoolID == d.PoolID {
				delete(lb.members, id)
			}
		}
		for id, m := range lb.monitors {
			if m.PoolID == d.PoolID {
				delete(lb.monitors, id)
			}
		}
		lb.treeChanged(e)
	case *events.MemberAdded:
		lb.members[d.MemberID] = d.Spec
		lb.treeChanged(e)
	case *events.MemberUpdated:
		lb.members[d.MemberID] = d.Spec
		lb.treeChanged(e)
	case *events.MemberRemoved:
		delete(lb.members, d.MemberID)
		lb.treeChanged(e)
	case *events.HealthMonitorSet:
		lb.monitors[d.HealthMonitorID] = d.Spec
		lb.treeChanged(e)
	case *events.HealthMonitorRemoved:
		delete(lb.monitors, d.HealthMonitorID)
		lb.treeChanged(e)
	case *events.L7PolicySet, *events.L7PolicyRemoved, *events.L7RuleSet, *events.L7RuleRemoved:
		lb.treeChanged(e)
	case *events.ConfigPublished:
		p := &Published{Version: d.Version, Nodes: append([]string(nil), d.Nodes...), NodeVersions: map[string]uint64{},
			Deadline: d.Deadline, Applied: map[string]uint64{}, Withdrawn: len(d.Nodes) == 0}
		for k, v := range d.NodeVersions {
			p.NodeVersions[k] = v
		}
		lb.published = p
		if p.Withdrawn {
			lb.logf(t, StepPublish, "config withdrawn from every node")
		} else {
			lb.logf(t, StepPublish, "config v%d published to %s", d.Version, strings.Join(d.Nodes, ", "))
		}
	case *events.ConfigApplied:
		if p := lb.published; p != nil && d.Version >= p.NodeVersions[d.NodeID] {
			if _, done := p.Applied[d.NodeID]; !done {
				p.Applied[d.NodeID] = d.Version
				lb.logf(t, StepApplyConfig, "node %s applied config (node version %d)", d.NodeID, d.Version)
			}
		}
	case *events.ELBActive:
		lb.phase = PhaseActive
		lb.everActive = true
		lb.activeVersion = d.Version
		lb.activeAt = t
		lb.failed = nil
		lb.logf(t, StepApplyConfig, "active with config v%d", d.Version)
	case *events.ELBFailed:
		lb.phase = PhaseError
		lb.failed = d
		lb.unanswered = false
		for _, n := range lb.nodes {
			if n.Status == NodeFailed {
				n.Retire = true
			}
		}
		lb.logf(t, d.Step, "failed: %s", d.Reason)
	case *events.ELBDeleteRequested:
		lb.phase = PhaseDeleting
		lb.deleteRequested = true
		lb.deleteDeadline = d.Deadline
		lb.deleteAt = t
		lb.logf(t, StepDeleteVM, "delete requested")
	case *events.ELBDeleted:
		lb.phase = PhaseDeleted
		lb.logf(t, StepDeleteVM, "deleted")
	case *events.FailoverRequested:
		for _, n := range lb.nodes {
			if n.Live() {
				n.Retire = true
			}
		}
		lb.startChange()
		lb.logf(t, StepCreateVM, "failover requested: replacing every node")
	case *events.NodeLost:
		if n, ok := lb.byID[d.NodeID]; ok && n.Live() && !n.Retire {
			n.Retire = true
			lb.startChange()
			lb.logf(t, StepCreateVM, "node %s lost (last seen %s): replacing it", d.NodeID, d.LastSeen.Format(time.RFC3339))
		}
	case *events.ScaleOutDecided:
		if d.To > lb.desired {
			lb.desired = d.To
			lb.startChange()
			lb.logf(t, StepCreateVM, "scale out to %d node(s): %s", d.To, d.Reason)
		}
	case *events.ScaleInDecided:
		if d.To >= 1 && d.To < lb.desired {
			lb.desired = d.To
			retire := map[string]bool{}
			for _, id := range d.Nodes {
				retire[id] = true
			}
			live := lb.liveNodes()
			extra := len(live) - d.To
			// Retire the named nodes first, then the newest.
			for i := len(live) - 1; i >= 0 && extra > 0; i-- {
				if retire[live[i].ID] {
					live[i].Retire = true
					extra--
				}
			}
			for i := len(live) - 1; i >= 0 && extra > 0; i-- {
				if !live[i].Retire {
					live[i].Retire = true
					extra--
				}
			}
			lb.startChange()
			lb.logf(t, StepCreateVM, "scale in to %d node(s): %s", d.To, d.Reason)
		}
	}
}

// liveNodes are the nodes that serve or will serve (not retired).
func (lb *LB) liveNodes() []*Node {
	var out []*Node
	for _, n := range lb.nodes {
		if n.Live() && !n.Retire {
			out = append(out, n)
		}
	}
	return out
}

// ServingNodes are the ready, non-retired nodes: the ones a new config
// version targets.
func (lb *LB) ServingNodes() []Node {
	var out []Node
	for _, n := range lb.liveNodes() {
		if n.Status == NodeReady {
			out = append(out, *n)
		}
	}
	return out
}

// NodeIDFor is the deterministic id of the k-th node (1-based) ever
// requested for a load balancer: a redelivered decision names the same node.
func NodeIDFor(lbID string, k int) string { return nodeIDPrefix + lbID + "-" + strconv.Itoa(k) }

// LBOfNode returns the load balancer id encoded in a node id made by NodeIDFor.
func LBOfNode(nodeID string) (string, bool) {
	rest, ok := strings.CutPrefix(nodeID, nodeIDPrefix)
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return "", false
	}
	if _, err := strconv.Atoi(rest[i+1:]); err != nil {
		return "", false
	}
	return rest[:i], true
}

// AwaitedNodes are the nodes whose applied report the workflow waits for.
func (lb *LB) AwaitedNodes() []string {
	p := lb.published
	if p == nil || p.Withdrawn {
		return nil
	}
	var out []string
	for n := range p.NodeVersions {
		if _, ok := p.Applied[n]; !ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func sameSet(a []string, b []Node) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[string]bool, len(a))
	for _, x := range a {
		m[x] = true
	}
	for _, n := range b {
		if !m[n.ID] {
			return false
		}
	}
	return true
}

// publishedTengine lists the load balancer's own nodes in the published config.
func (lb *LB) publishedTengine() []string {
	var out []string
	if lb.published == nil {
		return nil
	}
	for _, id := range lb.published.Nodes {
		if _, own := lb.byID[id]; own {
			out = append(out, id)
		}
	}
	return out
}

func (lb *LB) needPublish(serving []Node) bool {
	p := lb.published
	if p == nil || p.Withdrawn {
		return true
	}
	return lb.treeVersion > p.Version || !sameSet(lb.publishedTengine(), serving)
}
