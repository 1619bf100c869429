package domain

import (
	"sort"
	"time"

	"github.com/elbcloud/elb/events"
)

// Listener protocols as the data plane knows them.
const (
	protoTCP  = "TCP"
	protoUDP  = "UDP"
	protoHTTP = "HTTP"
)

// dataPlaneProtocol maps an Octavia listener protocol to what the data plane
// serves: HTTPS is passed through at L4 (TCP); TERMINATED_HTTPS and SCTP are
// not served yet and are left out of the config ("" result).
func dataPlaneProtocol(p string) string {
	switch p {
	case protoTCP, "HTTPS":
		return protoTCP
	case protoUDP:
		return protoUDP
	case protoHTTP:
		return protoHTTP
	}
	return ""
}

func scheduler(l events.ListenerSpec, pool *events.PoolSpec) string {
	if l.Scheduler != "" {
		return l.Scheduler
	}
	if pool != nil {
		switch pool.LBAlgorithm {
		case "LEAST_CONNECTIONS":
			return "wlc"
		case "SOURCE_IP", "SOURCE_IP_PORT":
			return "sh"
		}
	}
	return "wrr"
}

// poolFor finds a listener's pool: its default pool, else a pool bound to it.
func (lb *LB) poolFor(listenerID string, l events.ListenerSpec) (string, *events.PoolSpec) {
	if l.DefaultPoolID != "" {
		if p, ok := lb.pools[l.DefaultPoolID]; ok {
			return l.DefaultPoolID, &p
		}
	}
	ids := make([]string, 0, len(lb.pools))
	for id, p := range lb.pools {
		if p.ListenerID == listenerID {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return "", nil
	}
	sort.Strings(ids)
	p := lb.pools[ids[0]]
	return ids[0], &p
}

func (lb *LB) poolConfig(id string, p *events.PoolSpec) *events.PoolConfig {
	if p == nil || !p.AdminStateUp {
		return nil
	}
	pc := &events.PoolConfig{ID: id, Algorithm: p.LBAlgorithm, SessionPersistence: p.SessionPersistence, FailOpen: p.FailOpen, Members: []events.MemberConfig{}}
	if pc.Algorithm == "" {
		pc.Algorithm = "ROUND_ROBIN"
	}
	ids := make([]string, 0)
	for mid, m := range lb.members {
		if m.PoolID == id && m.AdminStateUp {
			ids = append(ids, mid)
		}
	}
	sort.Strings(ids)
	for _, mid := range ids {
		m := lb.members[mid]
		pc.Members = append(pc.Members, events.MemberConfig{ID: mid, Address: m.Address, Port: m.ProtocolPort, Weight: m.Weight,
			Backup: m.Backup, MonitorAddress: m.MonitorAddress, MonitorPort: m.MonitorPort})
	}
	mids := make([]string, 0)
	for hid, h := range lb.monitors {
		if h.PoolID == id && h.AdminStateUp {
			mids = append(mids, hid)
		}
	}
	sort.Strings(mids)
	if len(mids) > 0 {
		h := lb.monitors[mids[0]]
		hc := &events.HealthCheckConfig{Type: h.Type, Interval: time.Duration(h.Delay) * time.Second, Timeout: time.Duration(h.Timeout) * time.Second,
			Rise: h.MaxRetries, Fall: h.MaxRetriesDown, HTTPMethod: h.HTTPMethod, URLPath: h.URLPath, ExpectedCodes: h.ExpectedCodes}
		if hc.Interval <= 0 {
			hc.Interval = 5 * time.Second
		}
		if hc.Timeout <= 0 || hc.Timeout > hc.Interval {
			hc.Timeout = hc.Interval
		}
		if hc.Rise < 1 {
			hc.Rise = 3
		}
		if hc.Fall < 1 {
			hc.Fall = 3
		}
		pc.HealthMonitor = hc
	}
	return pc
}

type listenerEntry struct {
	id   string
	spec events.ListenerSpec
}

func (lb *LB) sortedListeners() []listenerEntry {
	out := make([]listenerEntry, 0, len(lb.listeners))
	for id, l := range lb.listeners {
		if l.AdminStateUp && dataPlaneProtocol(l.Protocol) != "" {
			out = append(out, listenerEntry{id, l})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].spec.ProtocolPort != out[j].spec.ProtocolPort {
			return out[i].spec.ProtocolPort < out[j].spec.ProtocolPort
		}
		return out[i].id < out[j].id
	})
	return out
}

func (lb *LB) listenerConfig(e listenerEntry) events.ListenerConfig {
	l := e.spec
	pid, pool := lb.poolFor(e.id, l)
	lc := events.ListenerConfig{ID: e.id, Protocol: dataPlaneProtocol(l.Protocol), Port: l.ProtocolPort,
		Scheduler: scheduler(l, pool), ForwardMethod: l.ForwardMethod, PersistenceTimeout: l.PersistenceTimeout,
		AllowedCIDRs: l.AllowedCIDRs, ConnectionLimit: max(l.ConnectionLimit, 0), TimeoutClientDataMS: l.TimeoutClientData,
		TimeoutMemberConnectMS: l.TimeoutMemberConnect, TimeoutMemberDataMS: l.TimeoutMemberData, InsertHeaders: l.InsertHeaders,
		DrainTimeoutSeconds: l.ConnectionDrainTimeout, Pool: lb.poolConfig(pid, pool)}
	if lc.ForwardMethod == "" {
		lc.ForwardMethod = "NAT"
	}
	return lc
}

// TengineConfig is the load balancer's part of a tengine node's config: its
// HTTP listeners, bound on the node's own address at the listener port.
func (lb *LB) TengineConfig() events.LBConfig {
	out := events.LBConfig{ID: lb.id, VIP: lb.vip, Listeners: []events.ListenerConfig{}}
	for _, e := range lb.sortedListeners() {
		if dataPlaneProtocol(e.spec.Protocol) == protoHTTP {
			out.Listeners = append(out.Listeners, lb.listenerConfig(e))
		}
	}
	return out
}

// LVSConfig is the load balancer's part of an LVS node's config: the VIP with
// every listener; TCP/UDP listeners target the members, HTTP listeners the
// load balancer's tengine nodes at the listener port.
func (lb *LB) LVSConfig(tengine []Node) events.LBConfig {
	out := events.LBConfig{ID: lb.id, VIP: lb.vip, Listeners: []events.ListenerConfig{}}
	for _, e := range lb.sortedListeners() {
		lc := lb.listenerConfig(e)
		if lc.Protocol == protoHTTP {
			for _, n := range tengine {
				lc.L4Targets = append(lc.L4Targets, events.Target{ID: n.ID, Address: n.Address, Port: lc.Port, Weight: 1})
			}
			lc.Pool = nil // the tengine tier checks and balances the members
		} else if lc.Pool != nil {
			for _, m := range lc.Pool.Members {
				if m.Backup {
					continue
				}
				lc.L4Targets = append(lc.L4Targets, events.Target{ID: m.ID, Address: m.Address, Port: m.Port, Weight: m.Weight})
			}
		}
		out.Listeners = append(out.Listeners, lc)
	}
	return out
}

// ReplaceLB returns cfg's load balancers with entry lb set (or removed when
// remove is true), ordered by id.
func ReplaceLB(list []events.LBConfig, entry events.LBConfig, remove bool) []events.LBConfig {
	out := make([]events.LBConfig, 0, len(list)+1)
	for _, c := range list {
		if c.ID != entry.ID {
			out = append(out, c)
		}
	}
	if !remove {
		out = append(out, entry)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
