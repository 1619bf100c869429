package readmodel

import (
	"slices"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/apigw/domain"
)

// Resource kinds, also the quota keys.
const (
	KindLoadBalancer  = "loadbalancer"
	KindListener      = "listener"
	KindPool          = "pool"
	KindMember        = "member"
	KindHealthMonitor = "healthmonitor"
	KindL7Policy      = "l7policy"
	KindL7Rule        = "l7rule"
)

// Kinds lists every resource kind.
var Kinds = []string{KindLoadBalancer, KindListener, KindPool, KindMember, KindHealthMonitor, KindL7Policy, KindL7Rule}

type meta struct {
	id      string
	lb      string
	status  string
	created time.Time
	updated time.Time
	seq     uint64
}

type lbRec struct {
	meta
	project    string
	spec       events.LoadBalancerSpec
	vip        string
	nodes      map[string]string
	nodeOrder  []string
	log        *ProvisioningLog
	everActive bool
	deleted    bool
	children   []string // every child id, in creation order
}

type listenerRec struct {
	meta
	spec events.ListenerSpec
}

type poolRec struct {
	meta
	spec events.PoolSpec
}

type memberRec struct {
	meta
	spec      events.MemberSpec
	unhealthy bool
}

type monitorRec struct {
	meta
	spec events.HealthMonitorSpec
}

type policyRec struct {
	meta
	spec events.L7PolicySpec
}

type ruleRec struct {
	meta
	spec events.L7RuleSpec
}

// Model is the read model. It is safe for concurrent use: Apply is called
// from the projector's goroutine, reads from request handlers.
type Model struct {
	mu        sync.RWMutex
	lbs       map[string]*lbRec
	listeners map[string]*listenerRec
	pools     map[string]*poolRec
	members   map[string]*memberRec
	monitors  map[string]*monitorRec
	policies  map[string]*policyRec
	rules     map[string]*ruleRec
	kindOf    map[string]string // child id → kind
	counts    map[string]map[string]int
	quotas    map[string]map[string]int
	quotaSeen map[string]bool
	byProject map[string]map[string]*lbRec
}

// New returns an empty model.
func New() *Model {
	return &Model{
		lbs: map[string]*lbRec{}, listeners: map[string]*listenerRec{}, pools: map[string]*poolRec{},
		members: map[string]*memberRec{}, monitors: map[string]*monitorRec{}, policies: map[string]*policyRec{},
		rules: map[string]*ruleRec{}, kindOf: map[string]string{}, counts: map[string]map[string]int{},
		quotas: map[string]map[string]int{}, quotaSeen: map[string]bool{}, byProject: map[string]map[string]*lbRec{},
	}
}

func (m *Model) count(project, kind string, d int) {
	c := m.counts[project]
	if c == nil {
		c = map[string]int{}
		m.counts[project] = c
	}
	c[kind] += d
}

// Apply folds one event into the model. Events of other aggregates that
// carry a load balancer id (VIP allocation, nodes, health) are applied to
// that load balancer.
func (m *Model) Apply(e events.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := e.OccurredAt
	if e.AggregateType == events.AggQuota {
		switch d := e.Data.(type) {
		case *events.QuotaSet:
			q := m.quotas[e.AggregateID]
			if q == nil {
				q = map[string]int{}
				m.quotas[e.AggregateID] = q
			}
			for k, v := range d.Quotas {
				q[k] = v
			}
			m.quotaSeen[e.AggregateID] = true
		case *events.QuotaReset:
			delete(m.quotas, e.AggregateID)
			delete(m.quotaSeen, e.AggregateID)
		}
		return nil
	}
	switch d := e.Data.(type) {
	case *events.VIPAllocated:
		if lb := m.lbs[d.LoadBalancerID]; lb != nil {
			lb.vip = d.Address
		}
		return nil
	case *events.VMReady:
		if lb := m.lbs[d.LoadBalancerID]; lb != nil {
			lb.addNode(d.NodeID, d.Address)
		}
		return nil
	case *events.VMDeleted:
		if lb := m.lbs[d.LoadBalancerID]; lb != nil {
			lb.removeNode(d.NodeID)
		}
		return nil
	case *events.RealServerUnhealthy:
		m.setHealth(d.LoadBalancerID, d.PoolID, d.MemberID, d.Address, d.Port, true)
		return nil
	case *events.RealServerHealthy:
		m.setHealth(d.LoadBalancerID, d.PoolID, d.MemberID, d.Address, d.Port, false)
		return nil
	}
	if e.AggregateType != events.AggLoadBalancer {
		return nil
	}
	id := e.AggregateID
	if d, ok := e.Data.(*events.ELBRequested); ok {
		if m.lbs[id] != nil {
			return nil
		}
		rec := &lbRec{meta: meta{id: id, lb: id, status: domain.StatusPendingCreate, created: t, seq: e.Sequence},
			project: e.ProjectID, spec: d.Spec, nodes: map[string]string{}}
		m.lbs[id] = rec
		if m.byProject[e.ProjectID] == nil {
			m.byProject[e.ProjectID] = map[string]*lbRec{}
		}
		m.byProject[e.ProjectID][id] = rec
		m.count(e.ProjectID, KindLoadBalancer, 1)
		return nil
	}
	lb := m.lbs[id]
	if lb == nil || lb.deleted {
		return nil
	}
	lb.updated = t
	mk := func(cid, kind string) meta {
		m.kindOf[cid] = kind
		lb.children = append(lb.children, cid)
		m.count(lb.project, kind, 1)
		return meta{id: cid, lb: id, status: domain.StatusPendingCreate, created: t, seq: e.Sequence}
	}
	switch d := e.Data.(type) {
	case *events.ELBUpdated:
		lb.spec = d.Spec // no workflow follows: the status stays (see domain)
	case *events.ELBActive:
		lb.everActive = true
		lb.status = domain.StatusActive
		lb.log = nil
		if d.VIP != "" {
			lb.vip = d.VIP
		}
		if len(d.Nodes) > 0 {
			keep := map[string]bool{}
			for _, n := range d.Nodes {
				keep[n] = true
				lb.addNode(n, lb.nodes[n])
			}
			for _, n := range slices.Clone(lb.nodeOrder) {
				if !keep[n] {
					lb.removeNode(n)
				}
			}
		}
		m.settleChildren(lb, domain.StatusActive)
	case *events.ELBFailed:
		lb.status = domain.StatusError
		lb.log = &ProvisioningLog{Reason: d.Reason, Step: d.Step, Time: ts(t), Log: d.Log}
		m.settleChildren(lb, domain.StatusError)
	case *events.FailoverRequested:
		lb.status = domain.StatusPendingUpdate
	case *events.ELBDeleteRequested:
		lb.status = domain.StatusPendingDelete
		m.eachChild(lb, func(mt *meta) { mt.status = domain.StatusPendingDelete })
	case *events.ELBDeleted:
		lb.status = domain.StatusDeleted
		lb.deleted = true
		for _, c := range slices.Clone(lb.children) {
			m.removeChild(lb, c)
		}
		m.count(lb.project, KindLoadBalancer, -1)
	case *events.ListenerCreated:
		if m.listeners[d.ListenerID] == nil {
			m.listeners[d.ListenerID] = &listenerRec{meta: mk(d.ListenerID, KindListener), spec: d.Spec}
		}
		m.childChanged(lb)
	case *events.ListenerUpdated:
		if r := m.listeners[d.ListenerID]; r != nil {
			r.spec, r.updated, r.status = d.Spec, t, domain.StatusPendingUpdate
		}
		m.childChanged(lb)
	case *events.ListenerDeleted:
		m.removeChild(lb, d.ListenerID)
		m.childChanged(lb)
	case *events.PoolCreated:
		if m.pools[d.PoolID] == nil {
			m.pools[d.PoolID] = &poolRec{meta: mk(d.PoolID, KindPool), spec: d.Spec}
			if l := m.listeners[d.Spec.ListenerID]; l != nil && l.spec.DefaultPoolID == "" {
				l.spec.DefaultPoolID = d.PoolID
			}
		}
		m.childChanged(lb)
	case *events.PoolUpdated:
		if r := m.pools[d.PoolID]; r != nil {
			r.spec, r.updated, r.status = d.Spec, t, domain.StatusPendingUpdate
		}
		m.childChanged(lb)
	case *events.PoolDeleted:
		m.removeChild(lb, d.PoolID)
		m.childChanged(lb)
	case *events.MemberAdded:
		if m.members[d.MemberID] == nil {
			m.members[d.MemberID] = &memberRec{meta: mk(d.MemberID, KindMember), spec: d.Spec}
		}
		m.childChanged(lb)
	case *events.MemberUpdated:
		if r := m.members[d.MemberID]; r != nil {
			r.spec, r.updated, r.status = d.Spec, t, domain.StatusPendingUpdate
		}
		m.childChanged(lb)
	case *events.MemberRemoved:
		m.removeChild(lb, d.MemberID)
		m.childChanged(lb)
	case *events.HealthMonitorSet:
		if r := m.monitors[d.HealthMonitorID]; r != nil {
			r.spec, r.updated, r.status = d.Spec, t, domain.StatusPendingUpdate
		} else {
			m.monitors[d.HealthMonitorID] = &monitorRec{meta: mk(d.HealthMonitorID, KindHealthMonitor), spec: d.Spec}
		}
		m.childChanged(lb)
	case *events.HealthMonitorRemoved:
		m.removeChild(lb, d.HealthMonitorID)
		m.childChanged(lb)
	case *events.L7PolicySet:
		if r := m.policies[d.L7PolicyID]; r != nil {
			r.spec, r.updated, r.status = d.Spec, t, domain.StatusPendingUpdate
		} else {
			m.policies[d.L7PolicyID] = &policyRec{meta: mk(d.L7PolicyID, KindL7Policy), spec: d.Spec}
		}
		m.childChanged(lb)
	case *events.L7PolicyRemoved:
		m.removeChild(lb, d.L7PolicyID)
		m.childChanged(lb)
	case *events.L7RuleSet:
		if r := m.rules[d.L7RuleID]; r != nil {
			r.spec, r.updated, r.status = d.Spec, t, domain.StatusPendingUpdate
		} else {
			m.rules[d.L7RuleID] = &ruleRec{meta: mk(d.L7RuleID, KindL7Rule), spec: d.Spec}
		}
		m.childChanged(lb)
	case *events.L7RuleRemoved:
		m.removeChild(lb, d.L7RuleID)
		m.childChanged(lb)
	}
	return nil
}

func (lb *lbRec) addNode(id, addr string) {
	if _, ok := lb.nodes[id]; !ok {
		lb.nodeOrder = append(lb.nodeOrder, id)
	}
	if addr != "" || lb.nodes[id] == "" {
		lb.nodes[id] = addr
	}
}

func (lb *lbRec) removeNode(id string) {
	delete(lb.nodes, id)
	lb.nodeOrder = slices.DeleteFunc(lb.nodeOrder, func(s string) bool { return s == id })
}

func (m *Model) childChanged(lb *lbRec) {
	if lb.status == domain.StatusActive || lb.status == domain.StatusError {
		lb.status = domain.StatusPendingUpdate
	}
}

// removeChild deletes a child and, as the aggregate does, everything that
// hangs below it, and clears references to it.
func (m *Model) removeChild(lb *lbRec, id string) {
	kind, ok := m.kindOf[id]
	if !ok {
		return
	}
	delete(m.kindOf, id)
	lb.children = slices.DeleteFunc(lb.children, func(s string) bool { return s == id })
	m.count(lb.project, kind, -1)
	var below []string
	switch kind {
	case KindListener:
		delete(m.listeners, id)
		for _, c := range lb.children {
			if p := m.pools[c]; p != nil && p.spec.ListenerID == id {
				p.spec.ListenerID = ""
			}
			if p := m.policies[c]; p != nil && p.spec.ListenerID == id {
				below = append(below, c)
			}
		}
	case KindPool:
		delete(m.pools, id)
		for _, c := range lb.children {
			if r := m.members[c]; r != nil && r.spec.PoolID == id {
				below = append(below, c)
			}
			if r := m.monitors[c]; r != nil && r.spec.PoolID == id {
				below = append(below, c)
			}
			if l := m.listeners[c]; l != nil && l.spec.DefaultPoolID == id {
				l.spec.DefaultPoolID = ""
			}
		}
	case KindMember:
		delete(m.members, id)
	case KindHealthMonitor:
		delete(m.monitors, id)
	case KindL7Policy:
		delete(m.policies, id)
		for _, c := range lb.children {
			if r := m.rules[c]; r != nil && r.spec.L7PolicyID == id {
				below = append(below, c)
			}
		}
	case KindL7Rule:
		delete(m.rules, id)
	}
	for _, c := range below {
		m.removeChild(lb, c)
	}
}

func (m *Model) childMeta(id string) *meta {
	switch m.kindOf[id] {
	case KindListener:
		return &m.listeners[id].meta
	case KindPool:
		return &m.pools[id].meta
	case KindMember:
		return &m.members[id].meta
	case KindHealthMonitor:
		return &m.monitors[id].meta
	case KindL7Policy:
		return &m.policies[id].meta
	case KindL7Rule:
		return &m.rules[id].meta
	}
	return nil
}

func (m *Model) eachChild(lb *lbRec, fn func(*meta)) {
	for _, c := range lb.children {
		if mt := m.childMeta(c); mt != nil {
			fn(mt)
		}
	}
}

// settleChildren ends the pending state of every child: ACTIVE when the
// provisioner applied the config, ERROR when it failed.
func (m *Model) settleChildren(lb *lbRec, status string) {
	m.eachChild(lb, func(mt *meta) {
		if domain.IsPending(mt.status) || status == domain.StatusActive {
			mt.status = status
		}
	})
}

func (m *Model) setHealth(lbID, poolID, memberID, addr string, port int, unhealthy bool) {
	if r := m.members[memberID]; r != nil {
		r.unhealthy = unhealthy
		return
	}
	lb := m.lbs[lbID]
	if lb == nil {
		return
	}
	for _, c := range lb.children {
		if r := m.members[c]; r != nil && r.spec.Address == addr && r.spec.ProtocolPort == port && (poolID == "" || r.spec.PoolID == poolID) {
			r.unhealthy = unhealthy
		}
	}
}
