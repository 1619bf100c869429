package readmodel

import (
	"slices"

	"github.com/elbcloud/elb/services/apigw/domain"
)

// Operating statuses (Octavia).
const (
	OpOnline    = "ONLINE"
	OpOffline   = "OFFLINE"
	OpDegraded  = "DEGRADED"
	OpError     = "ERROR"
	OpNoMonitor = "NO_MONITOR"
)

func (m *Model) lbOf(mt *meta) *lbRec { return m.lbs[mt.lb] }

func (m *Model) poolMonitor(lb *lbRec, poolID string) *monitorRec {
	for _, c := range lb.children {
		if r := m.monitors[c]; r != nil && r.spec.PoolID == poolID {
			return r
		}
	}
	return nil
}

func (m *Model) memberOp(lb *lbRec, r *memberRec) string {
	switch {
	case !lb.everActive || !r.spec.AdminStateUp:
		return OpOffline
	case r.unhealthy:
		return OpError
	case m.poolMonitor(lb, r.spec.PoolID) == nil:
		return OpNoMonitor
	}
	return OpOnline
}

func (m *Model) poolOp(lb *lbRec, r *poolRec) string {
	if !lb.everActive || !r.spec.AdminStateUp {
		return OpOffline
	}
	n, bad := 0, 0
	for _, c := range lb.children {
		if mr := m.members[c]; mr != nil && mr.spec.PoolID == r.id && mr.spec.AdminStateUp {
			n++
			if mr.unhealthy {
				bad++
			}
		}
	}
	switch {
	case n > 0 && bad == n:
		return OpError
	case bad > 0:
		return OpDegraded
	}
	return OpOnline
}

func (m *Model) listenerOp(lb *lbRec, r *listenerRec) string {
	if !lb.everActive || !r.spec.AdminStateUp {
		return OpOffline
	}
	if p := m.pools[r.spec.DefaultPoolID]; p != nil {
		switch m.poolOp(lb, p) {
		case OpError:
			return OpError
		case OpDegraded:
			return OpDegraded
		}
	}
	return OpOnline
}

func (m *Model) lbOp(lb *lbRec) string {
	switch {
	case !lb.spec.AdminStateUp:
		return OpOffline
	case !lb.everActive && lb.status == domain.StatusError:
		return OpError
	case !lb.everActive:
		return OpOffline
	}
	for _, c := range lb.children {
		if l := m.listeners[c]; l != nil {
			if op := m.listenerOp(lb, l); op == OpError || op == OpDegraded {
				return OpDegraded
			}
		}
	}
	return OpOnline
}

func updated(mt *meta) *string {
	if mt.updated.IsZero() {
		return nil
	}
	return tsp(mt.updated)
}

func (m *Model) renderLB(lb *lbRec) LoadBalancer {
	v := LoadBalancer{
		ID: lb.id, Name: lb.spec.Name, Description: lb.spec.Description, ProjectID: lb.project, TenantID: lb.project,
		ProvisioningStatus: lb.status, OperatingStatus: m.lbOp(lb), AdminStateUp: lb.spec.AdminStateUp,
		VIPAddress: lb.vip, VIPPortID: lb.spec.VIPPortID, VIPSubnetID: lb.spec.VIPSubnetID, VIPNetworkID: lb.spec.VIPNetworkID,
		Provider: lb.spec.Provider, FlavorID: lb.spec.FlavorID, AvailabilityZone: lb.spec.AvailabilityZone,
		Listeners: []Ref{}, Pools: []Ref{}, Tags: tags(lb.spec.Tags), CreatedAt: ts(lb.created), UpdatedAt: updated(&lb.meta),
		L7Nodes: lb.spec.L7Nodes, MinL7Nodes: lb.spec.MinL7Nodes, MaxL7Nodes: lb.spec.MaxL7Nodes, Nodes: []Node{},
	}
	if v.VIPAddress == "" {
		v.VIPAddress = lb.spec.VIPAddress
	}
	if v.Provider == "" {
		v.Provider = "elb"
	}
	for _, c := range lb.children {
		switch m.kindOf[c] {
		case KindListener:
			v.Listeners = append(v.Listeners, Ref{c})
		case KindPool:
			v.Pools = append(v.Pools, Ref{c})
		}
	}
	for _, n := range lb.nodeOrder {
		v.Nodes = append(v.Nodes, Node{ID: n, Address: lb.nodes[n]})
	}
	if lb.log != nil && lb.status == domain.StatusError {
		l := *lb.log
		l.Log = slices.Clone(l.Log)
		v.ProvisioningLog = &l
	}
	return v
}

func (m *Model) renderListener(r *listenerRec) Listener {
	lb := m.lbOf(&r.meta)
	s := r.spec
	v := Listener{
		ID: r.id, Name: s.Name, Description: s.Description, ProjectID: lb.project, TenantID: lb.project,
		Protocol: s.Protocol, ProtocolPort: s.ProtocolPort, ConnectionLimit: s.ConnectionLimit, DefaultPoolID: strp(s.DefaultPoolID),
		SNIContainerRefs: []string{}, Loadbalancers: []Ref{{lb.id}}, L7Policies: []Ref{}, AdminStateUp: s.AdminStateUp,
		ProvisioningStatus: r.status, OperatingStatus: m.listenerOp(lb, r), InsertHeaders: map[string]string{},
		TimeoutClientData: s.TimeoutClientData, TimeoutMemberConnect: s.TimeoutMemberConnect, TimeoutMemberData: s.TimeoutMemberData,
		TimeoutTCPInspect: s.TimeoutTCPInspect, AllowedCIDRs: slices.Clone(s.AllowedCIDRs), Tags: tags(s.Tags),
		CreatedAt: ts(r.created), UpdatedAt: updated(&r.meta), Scheduler: s.Scheduler, ForwardMethod: s.ForwardMethod,
		PersistenceTimeout: s.PersistenceTimeout, ConnectionDrainTimeout: s.ConnectionDrainTimeout, lb: lb.id,
	}
	for k, val := range s.InsertHeaders {
		v.InsertHeaders[k] = val
	}
	for _, c := range lb.children {
		if p := m.policies[c]; p != nil && p.spec.ListenerID == r.id {
			v.L7Policies = append(v.L7Policies, Ref{c})
		}
	}
	return v
}

func (m *Model) renderPool(r *poolRec) Pool {
	lb := m.lbOf(&r.meta)
	s := r.spec
	v := Pool{
		ID: r.id, Name: s.Name, Description: s.Description, ProjectID: lb.project, TenantID: lb.project,
		Protocol: s.Protocol, LBAlgorithm: s.LBAlgorithm, AdminStateUp: s.AdminStateUp, Listeners: []Ref{},
		Loadbalancers: []Ref{{lb.id}}, Members: []Ref{}, ProvisioningStatus: r.status, OperatingStatus: m.poolOp(lb, r),
		Tags: tags(s.Tags), CreatedAt: ts(r.created), UpdatedAt: updated(&r.meta), FailOpen: s.FailOpen, lb: lb.id, listener: s.ListenerID,
	}
	if s.SessionPersistence != nil {
		sp := *s.SessionPersistence
		v.SessionPersistence = &sp
	}
	for _, c := range lb.children {
		if l := m.listeners[c]; l != nil && (l.spec.DefaultPoolID == r.id || s.ListenerID == c) {
			v.Listeners = append(v.Listeners, Ref{c})
		}
		if mr := m.members[c]; mr != nil && mr.spec.PoolID == r.id {
			v.Members = append(v.Members, Ref{c})
		}
		if hm := m.monitors[c]; hm != nil && hm.spec.PoolID == r.id {
			v.HealthMonitorID = strp(c)
		}
	}
	return v
}

func (m *Model) renderMember(r *memberRec) Member {
	lb := m.lbOf(&r.meta)
	s := r.spec
	v := Member{
		ID: r.id, Name: s.Name, PoolID: s.PoolID, ProjectID: lb.project, TenantID: lb.project, Address: s.Address,
		ProtocolPort: s.ProtocolPort, Weight: s.Weight, SubnetID: strp(s.SubnetID), AdminStateUp: s.AdminStateUp,
		Backup: s.Backup, MonitorAddress: strp(s.MonitorAddress), ProvisioningStatus: r.status, OperatingStatus: m.memberOp(lb, r),
		Tags: tags(s.Tags), CreatedAt: ts(r.created), UpdatedAt: updated(&r.meta), lb: lb.id, unhealthy: r.unhealthy,
	}
	if s.MonitorPort != 0 {
		p := s.MonitorPort
		v.MonitorPort = &p
	}
	return v
}

func (m *Model) renderMonitor(r *monitorRec) HealthMonitor {
	lb := m.lbOf(&r.meta)
	s := r.spec
	op := OpOnline
	if !s.AdminStateUp || !lb.everActive {
		op = OpOffline
	}
	return HealthMonitor{
		ID: r.id, Name: s.Name, ProjectID: lb.project, TenantID: lb.project, Type: s.Type, Delay: s.Delay, Timeout: s.Timeout,
		MaxRetries: s.MaxRetries, MaxRetriesDown: s.MaxRetriesDown, HTTPMethod: strp(s.HTTPMethod), URLPath: strp(s.URLPath),
		ExpectedCodes: strp(s.ExpectedCodes), AdminStateUp: s.AdminStateUp, Pools: []Ref{{s.PoolID}},
		ProvisioningStatus: r.status, OperatingStatus: op, Tags: tags(s.Tags), CreatedAt: ts(r.created), UpdatedAt: updated(&r.meta),
		lb: lb.id, pool: s.PoolID,
	}
}

func (m *Model) renderPolicy(r *policyRec) L7Policy {
	lb := m.lbOf(&r.meta)
	s := r.spec
	op := OpOnline
	if !s.AdminStateUp || !lb.everActive {
		op = OpOffline
	}
	v := L7Policy{
		ID: r.id, Name: s.Name, Description: s.Description, ProjectID: lb.project, TenantID: lb.project, ListenerID: s.ListenerID,
		Action: s.Action, Position: s.Position, RedirectPoolID: strp(s.RedirectPoolID), RedirectURL: strp(s.RedirectURL),
		RedirectPrefix: strp(s.RedirectPrefix), AdminStateUp: s.AdminStateUp, Rules: []Ref{}, ProvisioningStatus: r.status,
		OperatingStatus: op, Tags: tags(s.Tags), CreatedAt: ts(r.created), UpdatedAt: updated(&r.meta), lb: lb.id,
	}
	if s.RedirectHTTPCode != 0 {
		c := s.RedirectHTTPCode
		v.RedirectHTTPCode = &c
	}
	for _, c := range lb.children {
		if rr := m.rules[c]; rr != nil && rr.spec.L7PolicyID == r.id {
			v.Rules = append(v.Rules, Ref{c})
		}
	}
	return v
}

func (m *Model) renderRule(r *ruleRec) L7Rule {
	lb := m.lbOf(&r.meta)
	s := r.spec
	op := OpOnline
	if !s.AdminStateUp || !lb.everActive {
		op = OpOffline
	}
	return L7Rule{
		ID: r.id, ProjectID: lb.project, TenantID: lb.project, Type: s.Type, CompareType: s.CompareType, Key: strp(s.Key),
		Value: s.Value, Invert: s.Invert, AdminStateUp: s.AdminStateUp, ProvisioningStatus: r.status, OperatingStatus: op,
		Tags: tags(s.Tags), CreatedAt: ts(r.created), UpdatedAt: updated(&r.meta), lb: lb.id, policy: s.L7PolicyID,
	}
}
