package readmodel

import (
	"maps"
	"slices"
	"sort"

	"github.com/elbcloud/elb/services/apigw/domain"
)

// Owner tells which load balancer and project a resource belongs to. It
// knows load balancers (also deleted ones: deleted is true) and every child.
func (m *Model) Owner(kind, id string) (lbID, project string, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if kind == KindLoadBalancer {
		lb := m.lbs[id]
		if lb == nil || lb.deleted {
			return "", "", false
		}
		return lb.id, lb.project, true
	}
	if m.kindOf[id] != kind {
		return "", "", false
	}
	mt := m.childMeta(id)
	lb := m.lbs[mt.lb]
	return lb.id, lb.project, true
}

func bySeq[T any](items []T, seq func(T) uint64) []T {
	sort.Slice(items, func(i, j int) bool { return seq(items[i]) < seq(items[j]) })
	return items
}

// LoadBalancer returns a load balancer's view; deleted ones are not found.
func (m *Model) LoadBalancer(id string) (LoadBalancer, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	lb := m.lbs[id]
	if lb == nil || lb.deleted {
		return LoadBalancer{}, false
	}
	return m.renderLB(lb), true
}

// LoadBalancers lists the load balancers of a project ("" = all projects)
// in creation order; deleted ones only when withDeleted.
func (m *Model) LoadBalancers(project string, withDeleted bool) []LoadBalancer {
	m.mu.RLock()
	defer m.mu.RUnlock()
	recs := make([]*lbRec, 0, 16)
	for _, lb := range m.lbsOf(project) {
		if withDeleted || !lb.deleted {
			recs = append(recs, lb)
		}
	}
	bySeq(recs, func(r *lbRec) uint64 { return r.seq })
	out := make([]LoadBalancer, len(recs))
	for i, r := range recs {
		out[i] = m.renderLB(r)
	}
	return out
}

// lbsOf returns the load balancers of a project ("" = all). m.mu must be held.
func (m *Model) lbsOf(project string) map[string]*lbRec {
	if project == "" {
		return m.lbs
	}
	return m.byProject[project]
}

func children[R any, V any](m *Model, project string, recs map[string]*R, metaOf func(*R) *meta, keep func(*R) bool, render func(*R) V) []V {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var sel []*R
	for _, lb := range m.lbsOf(project) {
		for _, c := range lb.children {
			if r := recs[c]; r != nil && (keep == nil || keep(r)) {
				sel = append(sel, r)
			}
		}
	}
	bySeq(sel, func(r *R) uint64 { return metaOf(r).seq })
	out := make([]V, len(sel))
	for i, r := range sel {
		out[i] = render(r)
	}
	return out
}

// Listener returns a listener's view.
func (m *Model) Listener(id string) (Listener, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.listeners[id]
	if r == nil {
		return Listener{}, false
	}
	return m.renderListener(r), true
}

// Listeners lists a project's listeners ("" = all).
func (m *Model) Listeners(project string) []Listener {
	return children(m, project, m.listeners, func(r *listenerRec) *meta { return &r.meta }, nil, m.renderListener)
}

// Pool returns a pool's view.
func (m *Model) Pool(id string) (Pool, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.pools[id]
	if r == nil {
		return Pool{}, false
	}
	return m.renderPool(r), true
}

// Pools lists a project's pools ("" = all).
func (m *Model) Pools(project string) []Pool {
	return children(m, project, m.pools, func(r *poolRec) *meta { return &r.meta }, nil, m.renderPool)
}

// Member returns a member's view.
func (m *Model) Member(id string) (Member, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.members[id]
	if r == nil {
		return Member{}, false
	}
	return m.renderMember(r), true
}

// Members lists a pool's members.
func (m *Model) Members(project, poolID string) []Member {
	return children(m, project, m.members, func(r *memberRec) *meta { return &r.meta },
		func(r *memberRec) bool { return r.spec.PoolID == poolID }, m.renderMember)
}

// HealthMonitor returns a monitor's view.
func (m *Model) HealthMonitor(id string) (HealthMonitor, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.monitors[id]
	if r == nil {
		return HealthMonitor{}, false
	}
	return m.renderMonitor(r), true
}

// HealthMonitors lists a project's monitors ("" = all).
func (m *Model) HealthMonitors(project string) []HealthMonitor {
	return children(m, project, m.monitors, func(r *monitorRec) *meta { return &r.meta }, nil, m.renderMonitor)
}

// L7Policy returns a policy's view.
func (m *Model) L7Policy(id string) (L7Policy, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.policies[id]
	if r == nil {
		return L7Policy{}, false
	}
	return m.renderPolicy(r), true
}

// L7Policies lists a project's L7 policies ("" = all).
func (m *Model) L7Policies(project string) []L7Policy {
	return children(m, project, m.policies, func(r *policyRec) *meta { return &r.meta }, nil, m.renderPolicy)
}

// L7Rule returns a rule's view.
func (m *Model) L7Rule(id string) (L7Rule, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.rules[id]
	if r == nil {
		return L7Rule{}, false
	}
	return m.renderRule(r), true
}

// L7Rules lists a policy's rules.
func (m *Model) L7Rules(project, policyID string) []L7Rule {
	return children(m, project, m.rules, func(r *ruleRec) *meta { return &r.meta },
		func(r *ruleRec) bool { return r.spec.L7PolicyID == policyID }, m.renderRule)
}

// RulePolicy returns the policy a rule belongs to.
func (m *Model) RulePolicy(id string) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if r := m.rules[id]; r != nil {
		return r.spec.L7PolicyID
	}
	return ""
}

// Count is how many live resources of a kind a project has.
func (m *Model) Count(project, kind string) int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.counts[project][kind]
}

// Quota returns the quotas explicitly set for a project (kind → limit).
func (m *Model) Quota(project string) map[string]int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return maps.Clone(m.quotas[project])
}

// QuotaProjects lists the projects with explicitly set quotas.
func (m *Model) QuotaProjects() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Sorted(maps.Keys(m.quotaSeen))
}

// StatusMember, StatusMonitor, StatusPool, StatusRule, StatusPolicy,
// StatusListener and StatusLB form Octavia's status tree.
type (
	StatusMember struct {
		ID                 string `json:"id"`
		Name               string `json:"name"`
		Address            string `json:"address"`
		ProtocolPort       int    `json:"protocol_port"`
		ProvisioningStatus string `json:"provisioning_status"`
		OperatingStatus    string `json:"operating_status"`
	}
	StatusMonitor struct {
		ID                 string `json:"id"`
		Name               string `json:"name"`
		Type               string `json:"type"`
		ProvisioningStatus string `json:"provisioning_status"`
		OperatingStatus    string `json:"operating_status"`
	}
	StatusPool struct {
		ID                 string         `json:"id"`
		Name               string         `json:"name"`
		ProvisioningStatus string         `json:"provisioning_status"`
		OperatingStatus    string         `json:"operating_status"`
		Members            []StatusMember `json:"members"`
		HealthMonitor      *StatusMonitor `json:"healthmonitor,omitempty"`
	}
	StatusRule struct {
		ID                 string `json:"id"`
		Type               string `json:"type"`
		ProvisioningStatus string `json:"provisioning_status"`
		OperatingStatus    string `json:"operating_status"`
	}
	StatusPolicy struct {
		ID                 string       `json:"id"`
		Name               string       `json:"name"`
		Action             string       `json:"action"`
		ProvisioningStatus string       `json:"provisioning_status"`
		OperatingStatus    string       `json:"operating_status"`
		Rules              []StatusRule `json:"rules"`
	}
	StatusListener struct {
		ID                 string         `json:"id"`
		Name               string         `json:"name"`
		ProvisioningStatus string         `json:"provisioning_status"`
		OperatingStatus    string         `json:"operating_status"`
		Pools              []StatusPool   `json:"pools"`
		L7Policies         []StatusPolicy `json:"l7policies"`
	}
	StatusLB struct {
		ID                 string           `json:"id"`
		Name               string           `json:"name"`
		ProvisioningStatus string           `json:"provisioning_status"`
		OperatingStatus    string           `json:"operating_status"`
		VIPAddress         string           `json:"vip_address"`
		Listeners          []StatusListener `json:"listeners"`
		Pools              []StatusPool     `json:"pools"`
		Nodes              []Node           `json:"nodes"`
		ProvisioningLog    *ProvisioningLog `json:"provisioning_log,omitempty"`
	}
)

// StatusTree returns a load balancer's status tree.
func (m *Model) StatusTree(id string) (StatusLB, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	lb := m.lbs[id]
	if lb == nil || lb.deleted {
		return StatusLB{}, false
	}
	v := m.renderLB(lb)
	out := StatusLB{ID: v.ID, Name: v.Name, ProvisioningStatus: v.ProvisioningStatus, OperatingStatus: v.OperatingStatus,
		VIPAddress: v.VIPAddress, Listeners: []StatusListener{}, Pools: []StatusPool{}, Nodes: v.Nodes, ProvisioningLog: v.ProvisioningLog}
	pool := func(p *poolRec) StatusPool {
		sp := StatusPool{ID: p.id, Name: p.spec.Name, ProvisioningStatus: p.status, OperatingStatus: m.poolOp(lb, p), Members: []StatusMember{}}
		for _, c := range lb.children {
			if r := m.members[c]; r != nil && r.spec.PoolID == p.id {
				sp.Members = append(sp.Members, StatusMember{ID: r.id, Name: r.spec.Name, Address: r.spec.Address,
					ProtocolPort: r.spec.ProtocolPort, ProvisioningStatus: r.status, OperatingStatus: m.memberOp(lb, r)})
			}
		}
		if hm := m.poolMonitor(lb, p.id); hm != nil {
			h := m.renderMonitor(hm)
			sp.HealthMonitor = &StatusMonitor{ID: h.ID, Name: h.Name, Type: h.Type, ProvisioningStatus: h.ProvisioningStatus, OperatingStatus: h.OperatingStatus}
		}
		return sp
	}
	for _, c := range lb.children {
		if p := m.pools[c]; p != nil {
			out.Pools = append(out.Pools, pool(p))
		}
		l := m.listeners[c]
		if l == nil {
			continue
		}
		sl := StatusListener{ID: l.id, Name: l.spec.Name, ProvisioningStatus: l.status, OperatingStatus: m.listenerOp(lb, l),
			Pools: []StatusPool{}, L7Policies: []StatusPolicy{}}
		for _, pc := range lb.children {
			if p := m.pools[pc]; p != nil && (l.spec.DefaultPoolID == p.id || p.spec.ListenerID == l.id) {
				sl.Pools = append(sl.Pools, pool(p))
			}
			if pol := m.policies[pc]; pol != nil && pol.spec.ListenerID == l.id {
				pv := m.renderPolicy(pol)
				sp := StatusPolicy{ID: pv.ID, Name: pv.Name, Action: pv.Action, ProvisioningStatus: pv.ProvisioningStatus, OperatingStatus: pv.OperatingStatus, Rules: []StatusRule{}}
				for _, rc := range lb.children {
					if r := m.rules[rc]; r != nil && r.spec.L7PolicyID == pol.id {
						rv := m.renderRule(r)
						sp.Rules = append(sp.Rules, StatusRule{ID: rv.ID, Type: rv.Type, ProvisioningStatus: rv.ProvisioningStatus, OperatingStatus: rv.OperatingStatus})
					}
				}
				sl.L7Policies = append(sl.L7Policies, sp)
			}
		}
		out.Listeners = append(out.Listeners, sl)
	}
	return out, true
}

// Pending reports whether a load balancer is in a PENDING_* state.
func (m *Model) Pending(id string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	lb := m.lbs[id]
	return lb != nil && domain.IsPending(lb.status)
}
