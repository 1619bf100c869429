// Package domain holds the allocator's aggregates: a VIP pool, whose state is
// only ever the result of applying its VIPAllocated/VIPReleased events, and
// the LVS pairs VIPs are placed on. No I/O happens here.
package domain

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/elbcloud/elb/events"
)

// ErrVIPPoolExhausted is returned when no pool that may serve a request has a
// free address left.
var ErrVIPPoolExhausted = errors.New("vip pool exhausted")

// ErrAddressInUse is returned when a requested vip_address belongs to another
// load balancer.
var ErrAddressInUse = errors.New("vip address in use")

// ErrAddressNotInPool is returned when a requested vip_address is in no pool
// (or is a reserved address of one).
var ErrAddressNotInPool = errors.New("vip address not in any pool")

// ErrNoLVSPair is returned when no registered LVS pair can carry the VIP.
var ErrNoLVSPair = errors.New("no lvs pair available")

// ErrInvalidPool is returned for a pool configuration that cannot be used.
var ErrInvalidPool = errors.New("invalid vip pool config")

// PoolSpec configures one VIP pool.
type PoolSpec struct {
	// Name is the pool's aggregate id (a subject token).
	Name string `json:"name"`
	// CIDRs are the ranges the pool hands out, in order.
	CIDRs []string `json:"cidrs"`
	// Reserved addresses are never handed out. Network and broadcast
	// addresses of IPv4 ranges wider than /31 are always reserved.
	Reserved []string `json:"reserved,omitempty"`
	// AvailabilityZone limits the pool to load balancers of that zone; empty
	// serves every zone.
	AvailabilityZone string `json:"availability_zone,omitempty"`
}

// DefaultPools is the single-machine (`elb up`) pool: loopback addresses the
// userspace L4 driver can bind without privileges.
func DefaultPools() []PoolSpec {
	return []PoolSpec{{Name: "local", CIDRs: []string{"127.100.0.0/24"}, Reserved: []string{"127.100.0.0", "127.100.0.255"}}}
}

// Pool is the VIP pool aggregate.
type Pool struct {
	name     string
	az       string
	prefixes []netip.Prefix
	reserved map[netip.Addr]bool
	version  uint64
	byAddr   map[netip.Addr]Allocation
	byLB     map[string]Allocation
}

// Allocation is one address handed to one load balancer.
type Allocation struct {
	LoadBalancerID string
	Address        netip.Addr
	Pair           string
}

// NewPool validates a spec and returns an empty pool (version 0).
func NewPool(spec PoolSpec) (*Pool, error) {
	if !events.ValidToken(spec.Name) {
		return nil, fmt.Errorf("%w: name %q", ErrInvalidPool, spec.Name)
	}
	if len(spec.CIDRs) == 0 {
		return nil, fmt.Errorf("%w: pool %s has no cidrs", ErrInvalidPool, spec.Name)
	}
	p := &Pool{name: spec.Name, az: spec.AvailabilityZone, reserved: map[netip.Addr]bool{},
		byAddr: map[netip.Addr]Allocation{}, byLB: map[string]Allocation{}}
	for _, c := range spec.CIDRs {
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("%w: pool %s: %w", ErrInvalidPool, spec.Name, err)
		}
		pfx = pfx.Masked()
		p.prefixes = append(p.prefixes, pfx)
		if pfx.Addr().Is4() && pfx.Bits() < 31 {
			p.reserved[pfx.Addr()] = true
			p.reserved[lastAddr(pfx)] = true
		}
	}
	for _, r := range spec.Reserved {
		a, err := netip.ParseAddr(r)
		if err != nil {
			return nil, fmt.Errorf("%w: pool %s reserved: %w", ErrInvalidPool, spec.Name, err)
		}
		p.reserved[a] = true
	}
	return p, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Name is the pool's aggregate id.
func (p *Pool) Name() string { return p.name }

// Version is the aggregate version the state reflects.
func (p *Pool) Version() uint64 { return p.version }

// AvailabilityZone is the zone the pool serves ("" for all).
func (p *Pool) AvailabilityZone() string { return p.az }

// Serves reports whether the pool may hand addresses to a load balancer of zone az.
func (p *Pool) Serves(az string) bool { return az == "" || p.az == "" || p.az == az }

// Apply folds one event of the pool's history into its state. It is the only
// place state changes.
func (p *Pool) Apply(e events.Event) {
	p.version = e.AggregateVersion
	switch d := e.Data.(type) {
	case *events.VIPAllocated:
		a, err := netip.ParseAddr(d.Address)
		if err != nil {
			return
		}
		al := Allocation{LoadBalancerID: d.LoadBalancerID, Address: a, Pair: d.LVSPair}
		p.byAddr[a] = al
		p.byLB[d.LoadBalancerID] = al
	case *events.VIPReleased:
		a, err := netip.ParseAddr(d.Address)
		if err != nil {
			return
		}
		if cur, ok := p.byAddr[a]; ok && cur.LoadBalancerID == d.LoadBalancerID {
			delete(p.byAddr, a)
			delete(p.byLB, d.LoadBalancerID)
		}
	}
}

// Plan records a decided allocation in this in-memory copy without moving
// its version, so that several allocations can be decided against one
// loaded state and appended in one commit.
func (p *Pool) Plan(ev events.VIPAllocated) {
	a, err := netip.ParseAddr(ev.Address)
	if err != nil {
		return
	}
	al := Allocation{LoadBalancerID: ev.LoadBalancerID, Address: a, Pair: ev.LVSPair}
	p.byAddr[a] = al
	p.byLB[ev.LoadBalancerID] = al
}

// Of returns the allocation of a load balancer in this pool.
func (p *Pool) Of(lbID string) (Allocation, bool) {
	a, ok := p.byLB[lbID]
	return a, ok
}

// Allocations lists every current allocation, ordered by address.
func (p *Pool) Allocations() []Allocation {
	out := make([]Allocation, 0, len(p.byAddr))
	for _, a := range p.byAddr {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address.Less(out[j].Address) })
	return out
}

// Contains reports whether addr is one the pool could hand out.
func (p *Pool) Contains(addr netip.Addr) bool {
	if p.reserved[addr] {
		return false
	}
	for _, pfx := range p.prefixes {
		if pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// Holder returns the load balancer holding addr, if any.
func (p *Pool) Holder(addr netip.Addr) (string, bool) {
	a, ok := p.byAddr[addr]
	return a.LoadBalancerID, ok
}

// Free returns the lowest free address. Lowest-first keeps choices
// deterministic, so racing replicas pick the same address and the loser's
// append conflicts instead of both succeeding with different addresses.
func (p *Pool) Free() (netip.Addr, error) {
	for _, pfx := range p.prefixes {
		for a := pfx.Addr(); a.IsValid() && pfx.Contains(a); a = a.Next() {
			if p.reserved[a] {
				continue
			}
			if _, used := p.byAddr[a]; !used {
				return a, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("pool %s: %w", p.name, ErrVIPPoolExhausted)
}

// Allocate decides the event that hands an address to lbID: the requested
// address when given (it must be free and in this pool), else the lowest free
// one. It does not change the pool; apply the returned event for that.
func (p *Pool) Allocate(lbID string, requested netip.Addr, pair Pair) (events.VIPAllocated, error) {
	if cur, ok := p.byLB[lbID]; ok {
		return events.VIPAllocated{LoadBalancerID: lbID, Pool: p.name, Address: cur.Address.String(), LVSPair: cur.Pair, AvailabilityZone: p.az}, nil
	}
	addr := requested
	if addr.IsValid() {
		if !p.Contains(addr) {
			return events.VIPAllocated{}, fmt.Errorf("%s in pool %s: %w", addr, p.name, ErrAddressNotInPool)
		}
		if holder, used := p.byAddr[addr]; used && holder.LoadBalancerID != lbID {
			return events.VIPAllocated{}, fmt.Errorf("%s: %w", addr, ErrAddressInUse)
		}
	} else {
		a, err := p.Free()
		if err != nil {
			return events.VIPAllocated{}, err
		}
		addr = a
	}
	az := p.az
	if az == "" {
		az = pair.AvailabilityZone
	}
	return events.VIPAllocated{LoadBalancerID: lbID, Pool: p.name, Address: addr.String(), LVSPair: pair.Name, AvailabilityZone: az}, nil
}

// Release decides the event that returns lbID's address, if it holds one.
func (p *Pool) Release(lbID string) (events.VIPReleased, bool) {
	cur, ok := p.byLB[lbID]
	if !ok {
		return events.VIPReleased{}, false
	}
	return events.VIPReleased{LoadBalancerID: lbID, Pool: p.name, Address: cur.Address.String()}, true
}
