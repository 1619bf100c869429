package domain

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/elbcloud/elb/events"
)

// Provisioning statuses (Octavia).
const (
	StatusActive        = "ACTIVE"
	StatusPendingCreate = "PENDING_CREATE"
	StatusPendingUpdate = "PENDING_UPDATE"
	StatusPendingDelete = "PENDING_DELETE"
	StatusError         = "ERROR"
	StatusDeleted       = "DELETED"
)

// IsPending reports whether a provisioning status is PENDING_*.
func IsPending(s string) bool {
	return s == StatusPendingCreate || s == StatusPendingUpdate || s == StatusPendingDelete
}

// LoadBalancer is the aggregate: one load balancer and its whole tree. Its
// state changes only through Apply; commands return the event payloads they
// decide on and never change the aggregate themselves.
type LoadBalancer struct {
	id        string
	project   string
	version   uint64
	lastSeq   uint64
	status    string
	spec      events.LoadBalancerSpec
	listeners map[string]events.ListenerSpec
	pools     map[string]events.PoolSpec
	members   map[string]events.MemberSpec
	monitors  map[string]events.HealthMonitorSpec
	policies  map[string]events.L7PolicySpec
	rules     map[string]events.L7RuleSpec
}

// NewLoadBalancer returns the empty aggregate (version 0) for id.
func NewLoadBalancer(id string) *LoadBalancer {
	return &LoadBalancer{
		id:        id,
		listeners: map[string]events.ListenerSpec{},
		pools:     map[string]events.PoolSpec{},
		members:   map[string]events.MemberSpec{},
		monitors:  map[string]events.HealthMonitorSpec{},
		policies:  map[string]events.L7PolicySpec{},
		rules:     map[string]events.L7RuleSpec{},
	}
}

// Rebuild replays an aggregate's history.
func Rebuild(id string, history []events.Event) *LoadBalancer {
	lb := NewLoadBalancer(id)
	for _, e := range history {
		lb.Apply(e)
	}
	return lb
}

// ID is the load balancer id.
func (lb *LoadBalancer) ID() string { return lb.id }

// Exists reports whether the load balancer was requested and not deleted.
func (lb *LoadBalancer) Exists() bool { return lb.version > 0 && lb.status != StatusDeleted }

// Project is the owning project.
func (lb *LoadBalancer) Project() string { return lb.project }

// Status is the provisioning status.
func (lb *LoadBalancer) Status() string { return lb.status }

// Version is the aggregate version (number of events applied).
func (lb *LoadBalancer) Version() uint64 { return lb.version }

// LastSequence is the stream sequence of the last applied event.
func (lb *LoadBalancer) LastSequence() uint64 { return lb.lastSeq }

// Spec returns a copy of the load balancer's own fields.
func (lb *LoadBalancer) Spec() events.LoadBalancerSpec {
	s := lb.spec
	s.Tags = slices.Clone(s.Tags)
	return s
}

// Listener returns a listener's spec.
func (lb *LoadBalancer) Listener(id string) (events.ListenerSpec, bool) {
	s, ok := lb.listeners[id]
	return s, ok
}

// Pool returns a pool's spec.
func (lb *LoadBalancer) Pool(id string) (events.PoolSpec, bool) { s, ok := lb.pools[id]; return s, ok }

// Member returns a member's spec.
func (lb *LoadBalancer) Member(id string) (events.MemberSpec, bool) {
	s, ok := lb.members[id]
	return s, ok
}

// Monitor returns a health monitor's spec.
func (lb *LoadBalancer) Monitor(id string) (events.HealthMonitorSpec, bool) {
	s, ok := lb.monitors[id]
	return s, ok
}

// Policy returns an L7 policy's spec.
func (lb *LoadBalancer) Policy(id string) (events.L7PolicySpec, bool) {
	s, ok := lb.policies[id]
	return s, ok
}

// Rule returns an L7 rule's spec.
func (lb *LoadBalancer) Rule(id string) (events.L7RuleSpec, bool) {
	s, ok := lb.rules[id]
	return s, ok
}

// Apply changes the state by one event. It is the only place state changes,
// for new events and for replayed history alike. Unknown types are ignored.
func (lb *LoadBalancer) Apply(e events.Event) {
	lb.version = e.AggregateVersion
	if e.Sequence > lb.lastSeq {
		lb.lastSeq = e.Sequence
	}
	switch d := e.Data.(type) {
	case *events.ELBRequested:
		lb.project = e.ProjectID
		lb.spec = d.Spec
		lb.status = StatusPendingCreate
	case *events.ELBUpdated:
		// The load balancer's own fields (name, description, tags, admin
		// state, L7 node bounds) need no data-plane workflow: the
		// provisioner and scaler read them from the aggregate, and no
		// ELBActive follows, so the status does not change (see
		// docs/decisions/0401-apigw-status-machine.md).
		lb.spec = d.Spec
	case *events.ELBActive:
		if lb.status != StatusDeleted && lb.status != StatusPendingDelete {
			lb.status = StatusActive
		}
	case *events.ELBFailed:
		if lb.status != StatusDeleted {
			lb.status = StatusError
		}
	case *events.FailoverRequested:
		lb.status = StatusPendingUpdate
	case *events.ELBDeleteRequested:
		lb.status = StatusPendingDelete
	case *events.ELBDeleted:
		lb.status = StatusDeleted
		clear(lb.listeners)
		clear(lb.pools)
		clear(lb.members)
		clear(lb.monitors)
		clear(lb.policies)
		clear(lb.rules)
	case *events.ListenerCreated:
		lb.listeners[d.ListenerID] = d.Spec
		lb.childChanged()
	case *events.ListenerUpdated:
		lb.listeners[d.ListenerID] = d.Spec
		lb.childChanged()
	case *events.ListenerDeleted:
		delete(lb.listeners, d.ListenerID)
		for id, p := range lb.pools {
			if p.ListenerID == d.ListenerID {
				p.ListenerID = ""
				lb.pools[id] = p
			}
		}
		for id, p := range lb.policies {
			if p.ListenerID == d.ListenerID {
				lb.removePolicy(id)
			}
		}
		lb.childChanged()
	case *events.PoolCreated:
		lb.pools[d.PoolID] = d.Spec
		if l, ok := lb.listeners[d.Spec.ListenerID]; ok && l.DefaultPoolID == "" {
			l.DefaultPoolID = d.PoolID
			lb.listeners[d.Spec.ListenerID] = l
		}
		lb.childChanged()
	case *events.PoolUpdated:
		lb.pools[d.PoolID] = d.Spec
		lb.childChanged()
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
		for id, l := range lb.listeners {
			if l.DefaultPoolID == d.PoolID {
				l.DefaultPoolID = ""
				lb.listeners[id] = l
			}
		}
		lb.childChanged()
	case *events.MemberAdded:
		lb.members[d.MemberID] = d.Spec
		lb.childChanged()
	case *events.MemberUpdated:
		lb.members[d.MemberID] = d.Spec
		lb.childChanged()
	case *events.MemberRemoved:
		delete(lb.members, d.MemberID)
		lb.childChanged()
	case *events.HealthMonitorSet:
		lb.monitors[d.HealthMonitorID] = d.Spec
		lb.childChanged()
	case *events.HealthMonitorRemoved:
		delete(lb.monitors, d.HealthMonitorID)
		lb.childChanged()
	case *events.L7PolicySet:
		lb.policies[d.L7PolicyID] = d.Spec
		lb.childChanged()
	case *events.L7PolicyRemoved:
		lb.removePolicy(d.L7PolicyID)
		lb.childChanged()
	case *events.L7RuleSet:
		lb.rules[d.L7RuleID] = d.Spec
		lb.childChanged()
	case *events.L7RuleRemoved:
		delete(lb.rules, d.L7RuleID)
		lb.childChanged()
	}
}

func (lb *LoadBalancer) removePolicy(id string) {
	delete(lb.policies, id)
	for rid, r := range lb.rules {
		if r.L7PolicyID == id {
			delete(lb.rules, rid)
		}
	}
}

// childChanged puts the load balancer into PENDING_UPDATE: the provisioner
// answers every config change with ELBActive (or ELBFailed).
func (lb *LoadBalancer) childChanged() {
	if lb.status == StatusActive || lb.status == StatusError {
		lb.status = StatusPendingUpdate
	}
}

// mutable checks that the load balancer exists and accepts a change.
func (lb *LoadBalancer) mutable() error {
	if !lb.Exists() {
		return notFound("load balancer", lb.id)
	}
	if IsPending(lb.status) {
		return fmt.Errorf("load balancer %s is %s: %w", lb.id, lb.status, ErrImmutable)
	}
	return nil
}

// Request creates the load balancer.
func (lb *LoadBalancer) Request(spec events.LoadBalancerSpec, deadline time.Time) ([]any, error) {
	if lb.version > 0 {
		return nil, conflict("load balancer %s already exists", lb.id)
	}
	if err := ValidateLoadBalancer(spec); err != nil {
		return nil, err
	}
	return []any{&events.ELBRequested{Spec: spec, Deadline: deadline}}, nil
}

// Update changes the load balancer's own fields.
func (lb *LoadBalancer) Update(spec events.LoadBalancerSpec) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	if err := ValidateLoadBalancer(spec); err != nil {
		return nil, err
	}
	return []any{&events.ELBUpdated{Spec: spec}}, nil
}

// Delete starts the delete workflow. Without cascade the load balancer must
// have no listeners and no pools (Octavia's rule).
func (lb *LoadBalancer) Delete(cascade bool, deadline time.Time) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	if !cascade && (len(lb.listeners) > 0 || len(lb.pools) > 0) {
		return nil, fmt.Errorf("load balancer %s has %d listeners and %d pools; delete them or use cascade: %w",
			lb.id, len(lb.listeners), len(lb.pools), ErrHasChildren)
	}
	return []any{&events.ELBDeleteRequested{Cascade: cascade, Deadline: deadline}}, nil
}

// Failover asks for every node to be replaced.
func (lb *LoadBalancer) Failover(deadline time.Time) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	return []any{&events.FailoverRequested{Deadline: deadline}}, nil
}

// CreateListener adds a listener.
func (lb *LoadBalancer) CreateListener(id string, spec events.ListenerSpec) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	spec.LoadBalancerID = lb.id
	if err := lb.checkListener(id, spec); err != nil {
		return nil, err
	}
	return []any{&events.ListenerCreated{ListenerID: id, Spec: spec}}, nil
}

// UpdateListener replaces a listener's spec.
func (lb *LoadBalancer) UpdateListener(id string, spec events.ListenerSpec) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	old, ok := lb.listeners[id]
	if !ok {
		return nil, notFound("listener", id)
	}
	spec.LoadBalancerID, spec.Protocol, spec.ProtocolPort = lb.id, old.Protocol, old.ProtocolPort
	if err := lb.checkListener(id, spec); err != nil {
		return nil, err
	}
	return []any{&events.ListenerUpdated{ListenerID: id, Spec: spec}}, nil
}

func (lb *LoadBalancer) checkListener(id string, spec events.ListenerSpec) error {
	if err := ValidateListener(spec); err != nil {
		return err
	}
	for oid, o := range lb.listeners {
		if oid != id && o.ProtocolPort == spec.ProtocolPort && sameTransport(o.Protocol, spec.Protocol) {
			return conflict("another listener on load balancer %s already uses protocol_port %d", lb.id, spec.ProtocolPort)
		}
	}
	if spec.DefaultPoolID != "" {
		p, ok := lb.pools[spec.DefaultPoolID]
		if !ok {
			return notFound("pool", spec.DefaultPoolID)
		}
		if !compatible(spec.Protocol, p.Protocol) {
			return Invalid("default_pool_id", "pool protocol %s is not compatible with listener protocol %s", p.Protocol, spec.Protocol)
		}
		for oid, o := range lb.listeners {
			if oid != id && o.DefaultPoolID == spec.DefaultPoolID {
				return conflict("pool %s is already the default pool of listener %s", spec.DefaultPoolID, oid)
			}
		}
		if p.ListenerID != "" && p.ListenerID != id {
			return conflict("pool %s is bound to listener %s", spec.DefaultPoolID, p.ListenerID)
		}
	}
	return nil
}

// DeleteListener removes a listener (and its L7 policies).
func (lb *LoadBalancer) DeleteListener(id string) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	if _, ok := lb.listeners[id]; !ok {
		return nil, notFound("listener", id)
	}
	return []any{&events.ListenerDeleted{ListenerID: id}}, nil
}

// CreatePool adds a pool; a pool created on a listener becomes that
// listener's default pool.
func (lb *LoadBalancer) CreatePool(id string, spec events.PoolSpec) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	spec.LoadBalancerID = lb.id
	if err := ValidatePool(spec); err != nil {
		return nil, err
	}
	if spec.ListenerID != "" {
		l, ok := lb.listeners[spec.ListenerID]
		if !ok {
			return nil, notFound("listener", spec.ListenerID)
		}
		if l.DefaultPoolID != "" {
			return nil, conflict("listener %s already has default pool %s", spec.ListenerID, l.DefaultPoolID)
		}
		if !compatible(l.Protocol, spec.Protocol) {
			return nil, Invalid("protocol", "pool protocol %s is not compatible with listener protocol %s", spec.Protocol, l.Protocol)
		}
	}
	return []any{&events.PoolCreated{PoolID: id, Spec: spec}}, nil
}

// UpdatePool replaces a pool's spec (protocol and bindings never change).
func (lb *LoadBalancer) UpdatePool(id string, spec events.PoolSpec) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	old, ok := lb.pools[id]
	if !ok {
		return nil, notFound("pool", id)
	}
	spec.LoadBalancerID, spec.ListenerID, spec.Protocol = lb.id, old.ListenerID, old.Protocol
	if err := ValidatePool(spec); err != nil {
		return nil, err
	}
	return []any{&events.PoolUpdated{PoolID: id, Spec: spec}}, nil
}

// DeletePool removes a pool with its members and monitor.
func (lb *LoadBalancer) DeletePool(id string) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	if _, ok := lb.pools[id]; !ok {
		return nil, notFound("pool", id)
	}
	for pid, p := range lb.policies {
		if p.RedirectPoolID == id {
			return nil, conflict("pool %s is the redirect pool of L7 policy %s", id, pid)
		}
	}
	return []any{&events.PoolDeleted{PoolID: id}}, nil
}

// CreateMember adds a member to a pool.
func (lb *LoadBalancer) CreateMember(id string, spec events.MemberSpec) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	if err := lb.checkMember(id, spec); err != nil {
		return nil, err
	}
	return []any{&events.MemberAdded{MemberID: id, Spec: spec}}, nil
}

func (lb *LoadBalancer) checkMember(id string, spec events.MemberSpec) error {
	if _, ok := lb.pools[spec.PoolID]; !ok {
		return notFound("pool", spec.PoolID)
	}
	if err := ValidateMember(spec); err != nil {
		return err
	}
	for oid, o := range lb.members {
		if oid != id && o.PoolID == spec.PoolID && o.Address == spec.Address && o.ProtocolPort == spec.ProtocolPort {
			return conflict("another member on pool %s already uses %s:%d", spec.PoolID, spec.Address, spec.ProtocolPort)
		}
	}
	return nil
}

// UpdateMember replaces a member's spec (address and port never change).
func (lb *LoadBalancer) UpdateMember(id string, spec events.MemberSpec) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	old, ok := lb.members[id]
	if !ok || old.PoolID != spec.PoolID {
		return nil, notFound("member", id)
	}
	spec.Address, spec.ProtocolPort = old.Address, old.ProtocolPort
	if err := lb.checkMember(id, spec); err != nil {
		return nil, err
	}
	return []any{&events.MemberUpdated{MemberID: id, Spec: spec}}, nil
}

// DeleteMember removes a member from its pool.
func (lb *LoadBalancer) DeleteMember(poolID, id string) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	m, ok := lb.members[id]
	if !ok || m.PoolID != poolID {
		return nil, notFound("member", id)
	}
	return []any{&events.MemberRemoved{MemberID: id, PoolID: poolID}}, nil
}

// BatchMembers makes a pool's member list equal to want (Octavia's batch
// update): members are matched by address and port; unmatched old members
// are removed, new ones added with ids from newID, changed ones updated.
func (lb *LoadBalancer) BatchMembers(poolID string, want []events.MemberSpec, newID func() string) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	if _, ok := lb.pools[poolID]; !ok {
		return nil, notFound("pool", poolID)
	}
	type key struct {
		addr string
		port int
	}
	have := map[key]string{}
	for _, id := range slices.Sorted(maps.Keys(lb.members)) {
		if m := lb.members[id]; m.PoolID == poolID {
			have[key{m.Address, m.ProtocolPort}] = id
		}
	}
	seen := map[key]bool{}
	var out []any
	for i, spec := range want {
		spec.PoolID = poolID
		if err := ValidateMember(spec); err != nil {
			return nil, fmt.Errorf("members[%d]: %w", i, err)
		}
		k := key{spec.Address, spec.ProtocolPort}
		if seen[k] {
			return nil, Invalid("members", "duplicate member %s:%d", spec.Address, spec.ProtocolPort)
		}
		seen[k] = true
		if id, ok := have[k]; ok {
			if !equalMember(lb.members[id], spec) {
				out = append(out, &events.MemberUpdated{MemberID: id, Spec: spec})
			}
			continue
		}
		out = append(out, &events.MemberAdded{MemberID: newID(), Spec: spec})
	}
	for _, id := range slices.Sorted(maps.Keys(lb.members)) {
		m := lb.members[id]
		if m.PoolID == poolID && !seen[key{m.Address, m.ProtocolPort}] {
			out = append(out, &events.MemberRemoved{MemberID: id, PoolID: poolID})
		}
	}
	return out, nil
}

func equalMember(a, b events.MemberSpec) bool {
	return a.Name == b.Name && a.Weight == b.Weight && a.AdminStateUp == b.AdminStateUp && a.Backup == b.Backup &&
		a.SubnetID == b.SubnetID && a.MonitorAddress == b.MonitorAddress && a.MonitorPort == b.MonitorPort &&
		slices.Equal(a.Tags, b.Tags)
}

// PoolMonitor returns the id of a pool's health monitor, if any.
func (lb *LoadBalancer) PoolMonitor(poolID string) (string, bool) {
	for id, m := range lb.monitors {
		if m.PoolID == poolID {
			return id, true
		}
	}
	return "", false
}

// CreateMonitor adds a pool's health monitor (one per pool).
func (lb *LoadBalancer) CreateMonitor(id string, spec events.HealthMonitorSpec) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	p, ok := lb.pools[spec.PoolID]
	if !ok {
		return nil, notFound("pool", spec.PoolID)
	}
	if other, ok := lb.PoolMonitor(spec.PoolID); ok {
		return nil, conflict("pool %s already has health monitor %s", spec.PoolID, other)
	}
	if err := ValidateMonitor(spec, p.Protocol); err != nil {
		return nil, err
	}
	return []any{&events.HealthMonitorSet{HealthMonitorID: id, Spec: spec}}, nil
}

// UpdateMonitor replaces a monitor's spec (pool and type never change).
func (lb *LoadBalancer) UpdateMonitor(id string, spec events.HealthMonitorSpec) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	old, ok := lb.monitors[id]
	if !ok {
		return nil, notFound("healthmonitor", id)
	}
	spec.PoolID, spec.Type = old.PoolID, old.Type
	if err := ValidateMonitor(spec, lb.pools[old.PoolID].Protocol); err != nil {
		return nil, err
	}
	return []any{&events.HealthMonitorSet{HealthMonitorID: id, Spec: spec}}, nil
}

// DeleteMonitor removes a health monitor.
func (lb *LoadBalancer) DeleteMonitor(id string) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	m, ok := lb.monitors[id]
	if !ok {
		return nil, notFound("healthmonitor", id)
	}
	return []any{&events.HealthMonitorRemoved{HealthMonitorID: id, PoolID: m.PoolID}}, nil
}

// SetPolicy creates (create=true) or updates an L7 policy.
func (lb *LoadBalancer) SetPolicy(id string, spec events.L7PolicySpec, create bool) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	old, exists := lb.policies[id]
	if create && exists {
		return nil, conflict("l7policy %s already exists", id)
	}
	if !create {
		if !exists {
			return nil, notFound("l7policy", id)
		}
		spec.ListenerID = old.ListenerID
	}
	l, ok := lb.listeners[spec.ListenerID]
	if !ok {
		return nil, notFound("listener", spec.ListenerID)
	}
	if err := ValidatePolicy(spec); err != nil {
		return nil, err
	}
	if spec.RedirectPoolID != "" {
		p, ok := lb.pools[spec.RedirectPoolID]
		if !ok {
			return nil, notFound("pool", spec.RedirectPoolID)
		}
		if !compatible(l.Protocol, p.Protocol) {
			return nil, Invalid("redirect_pool_id", "pool protocol %s is not compatible with listener protocol %s", p.Protocol, l.Protocol)
		}
	}
	if spec.Position == 0 {
		if exists {
			spec.Position = old.Position
		} else {
			n := 0
			for _, p := range lb.policies {
				if p.ListenerID == spec.ListenerID {
					n++
				}
			}
			spec.Position = n + 1
		}
	}
	return []any{&events.L7PolicySet{L7PolicyID: id, Spec: spec}}, nil
}

// DeletePolicy removes an L7 policy with its rules.
func (lb *LoadBalancer) DeletePolicy(id string) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	if _, ok := lb.policies[id]; !ok {
		return nil, notFound("l7policy", id)
	}
	return []any{&events.L7PolicyRemoved{L7PolicyID: id}}, nil
}

// SetRule creates (create=true) or updates an L7 rule of a policy.
func (lb *LoadBalancer) SetRule(id string, spec events.L7RuleSpec, create bool) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	if _, ok := lb.policies[spec.L7PolicyID]; !ok {
		return nil, notFound("l7policy", spec.L7PolicyID)
	}
	old, exists := lb.rules[id]
	if create && exists {
		return nil, conflict("l7rule %s already exists", id)
	}
	if !create && (!exists || old.L7PolicyID != spec.L7PolicyID) {
		return nil, notFound("l7rule", id)
	}
	if err := ValidateRule(spec); err != nil {
		return nil, err
	}
	return []any{&events.L7RuleSet{L7RuleID: id, Spec: spec}}, nil
}

// DeleteRule removes an L7 rule.
func (lb *LoadBalancer) DeleteRule(policyID, id string) ([]any, error) {
	if err := lb.mutable(); err != nil {
		return nil, err
	}
	r, ok := lb.rules[id]
	if !ok || r.L7PolicyID != policyID {
		return nil, notFound("l7rule", id)
	}
	return []any{&events.L7RuleRemoved{L7RuleID: id, L7PolicyID: policyID}}, nil
}

// Counts returns how many children of each kind the load balancer has.
func (lb *LoadBalancer) Counts() map[string]int {
	return map[string]int{
		"listener": len(lb.listeners), "pool": len(lb.pools), "member": len(lb.members),
		"healthmonitor": len(lb.monitors), "l7policy": len(lb.policies), "l7rule": len(lb.rules),
	}
}

// sameTransport reports whether two listener protocols compete for the same
// port (UDP and SCTP have their own port spaces; everything else is TCP).
func sameTransport(a, b string) bool { return transport(a) == transport(b) }

func transport(p string) string {
	switch p {
	case "UDP":
		return "udp"
	case "SCTP":
		return "sctp"
	}
	return "tcp"
}

// compatible is Octavia's listener/pool protocol matrix, simplified: UDP only
// with UDP, SCTP only with SCTP, HTTP listeners with HTTP or PROXY pools,
// and TCP-family listeners with any TCP-family pool.
func compatible(listener, pool string) bool {
	if transport(listener) != transport(pool) {
		return false
	}
	switch listener {
	case "HTTP", "TERMINATED_HTTPS":
		return pool == "HTTP" || pool == "PROXY" || pool == "PROXYV2"
	case "HTTPS":
		return pool == "HTTPS" || pool == "PROXY" || pool == "PROXYV2" || pool == "TCP"
	}
	return true
}
