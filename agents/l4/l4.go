// Package l4 declares the L4 data-plane driver interface of the lvs agent and
// the desired state the drivers program: virtual services (VIP, port,
// protocol) with a scheduler, persistence, a forwarding method and weighted
// destinations.
//
// Three drivers implement it: agents/l4/ipvs (the kernel's IPVS, the real
// LVS), agents/l4/nftables (DNAT through nftables maps, for kernels without
// IPVS) and agents/l4/userspace (a TCP/UDP forwarder for the unprivileged
// single-machine mode). agents/l4/auto picks one.
package l4

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Driver programs a data plane to a desired State. Implementations are safe
// for concurrent use.
type Driver interface {
	// Name is the driver's short name ("ipvs", "nftables", "userspace").
	Name() string
	// Apply makes the data plane match desired: it reads what is
	// programmed, computes the difference and applies it. Services absent
	// from desired are removed. A destination whose weight drops to 0 gets
	// no new connections while its established ones continue (draining).
	// Apply validates desired first and changes nothing when it is invalid.
	Apply(ctx context.Context, desired State) error
	// Observed reads back what is programmed, normalised (see Normalize).
	Observed(ctx context.Context) (State, error)
	// Close releases the driver's handles. Whether programmed services stay
	// in the kernel is driver-specific (kernel drivers leave them, so that
	// traffic keeps flowing across agent restarts; userspace stops).
	Close() error
}

// Sentinel errors.
var (
	// ErrInvalid means a desired state failed validation.
	ErrInvalid = errors.New("invalid l4 state")
	// ErrUnsupported means a driver cannot program what was asked (for
	// example an IPv6 VIP in the IPv4-only nftables table).
	ErrUnsupported = errors.New("not supported by this l4 driver")
	// ErrUnavailable means a driver's kernel feature or privilege is missing;
	// the wrapped message says what exactly.
	ErrUnavailable = errors.New("l4 driver unavailable")
)

// Protocol is TCP or UDP.
type Protocol string

// Protocols.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// Forward is the LVS forwarding method.
type Forward string

// Forwarding methods.
const (
	DR  Forward = "dr"  // direct routing: rewrite the MAC, the reply bypasses the LVS
	NAT Forward = "nat" // masquerade: rewrite the destination, the reply returns through the LVS
	TUN Forward = "tun" // IP-in-IP tunnel
)

// Schedulers (the IPVS names).
const (
	RR  = "rr"  // round robin
	WRR = "wrr" // weighted round robin
	LC  = "lc"  // least connections
	WLC = "wlc" // weighted least connections
	SH  = "sh"  // source hash
	DH  = "dh"  // destination hash
	SED = "sed" // shortest expected delay
	NQ  = "nq"  // never queue
	MH  = "mh"  // maglev hash
)

// Schedulers lists every supported scheduler.
var Schedulers = []string{RR, WRR, LC, WLC, SH, DH, SED, NQ, MH}

// MaxWeight is the largest destination weight (IPVS accepts up to 2^31-1;
// nothing we schedule needs more than this).
const MaxWeight = 65535

// State is the whole desired (or observed) L4 data plane of a node.
type State struct {
	Services []Service `json:"services"`
}

// Service is one virtual service.
type Service struct {
	VIP       netip.Addr `json:"vip"`
	Port      uint16     `json:"port"`
	Protocol  Protocol   `json:"protocol"`
	Scheduler string     `json:"scheduler"`
	// Persistence, in seconds, keeps a client on the destination it got
	// first for that long after its last connection; 0 disables it.
	Persistence  uint32        `json:"persistence,omitempty"`
	Forward      Forward       `json:"forward"`
	Destinations []Destination `json:"destinations"`
}

// Destination is one real server of a service.
type Destination struct {
	Addr netip.Addr `json:"addr"`
	Port uint16     `json:"port"`
	// Weight 0 drains: no new connections, established ones continue.
	Weight int `json:"weight"`
}

// Key identifies a service.
type Key struct {
	VIP      netip.Addr
	Port     uint16
	Protocol Protocol
}

// String renders "tcp 198.18.0.10:80".
func (k Key) String() string {
	return fmt.Sprintf("%s %s", k.Protocol, netip.AddrPortFrom(k.VIP, k.Port))
}

// Key returns the service's identity.
func (s Service) Key() Key { return Key{VIP: s.VIP, Port: s.Port, Protocol: s.Protocol} }

// AddrPort returns the destination address and port.
func (d Destination) AddrPort() netip.AddrPort { return netip.AddrPortFrom(d.Addr, d.Port) }

// Validate checks a desired state. Errors wrap ErrInvalid.
func (st State) Validate() error {
	var errs []error
	seen := map[Key]bool{}
	for _, s := range st.Services {
		k := s.Key()
		if seen[k] {
			errs = append(errs, fmt.Errorf("service %s: duplicate", k))
		}
		seen[k] = true
		if err := s.validate(); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", k, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

func (s Service) validate() error {
	var errs []error
	if !s.VIP.IsValid() || s.VIP.IsUnspecified() || s.VIP.Zone() != "" {
		errs = append(errs, fmt.Errorf("vip %q is not a unicast address", s.VIP))
	}
	if s.Port == 0 {
		errs = append(errs, errors.New("port 0"))
	}
	if s.Protocol != TCP && s.Protocol != UDP {
		errs = append(errs, fmt.Errorf("protocol %q (want tcp or udp)", s.Protocol))
	}
	if !slices.Contains(Schedulers, s.Scheduler) {
		errs = append(errs, fmt.Errorf("scheduler %q (want one of %s)", s.Scheduler, strings.Join(Schedulers, " ")))
	}
	switch s.Forward {
	case DR, NAT, TUN:
	default:
		errs = append(errs, fmt.Errorf("forward %q (want dr, nat or tun)", s.Forward))
	}
	if s.Persistence > 31*24*3600 {
		errs = append(errs, fmt.Errorf("persistence %ds longer than 31 days", s.Persistence))
	}
	dseen := map[netip.AddrPort]bool{}
	for _, d := range s.Destinations {
		ap := d.AddrPort()
		if !d.Addr.IsValid() || d.Addr.IsUnspecified() || d.Port == 0 {
			errs = append(errs, fmt.Errorf("destination %s: invalid address", ap))
			continue
		}
		if d.Addr.Is4() != s.VIP.Is4() {
			errs = append(errs, fmt.Errorf("destination %s: address family differs from the vip", ap))
		}
		if dseen[ap] {
			errs = append(errs, fmt.Errorf("destination %s: duplicate", ap))
		}
		dseen[ap] = true
		if d.Weight < 0 || d.Weight > MaxWeight {
			errs = append(errs, fmt.Errorf("destination %s: weight %d out of 0..%d", ap, d.Weight, MaxWeight))
		}
	}
	return errors.Join(errs...)
}

// Normalize returns a copy of st with services sorted by key and
// destinations by address, so that two states compare with Equal.
func Normalize(st State) State {
	out := State{Services: make([]Service, 0, len(st.Services))}
	for _, s := range st.Services {
		s.Destinations = slices.Clone(s.Destinations)
		slices.SortFunc(s.Destinations, func(a, b Destination) int { return a.AddrPort().Compare(b.AddrPort()) })
		if s.Destinations == nil {
			s.Destinations = []Destination{}
		}
		out.Services = append(out.Services, s)
	}
	slices.SortFunc(out.Services, func(a, b Service) int { return CompareKeys(a.Key(), b.Key()) })
	return out
}

// CompareKeys orders service keys by VIP, protocol, port.
func CompareKeys(a, b Key) int {
	return cmp.Or(a.VIP.Compare(b.VIP), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
}

// Equal reports whether two states program the same data plane.
func Equal(a, b State) bool {
	a, b = Normalize(a), Normalize(b)
	return slices.EqualFunc(a.Services, b.Services, func(x, y Service) bool {
		return x.Key() == y.Key() && x.Scheduler == y.Scheduler && x.Persistence == y.Persistence &&
			x.Forward == y.Forward && slices.Equal(x.Destinations, y.Destinations)
	})
}

// SameService reports whether two services differ only in destinations.
func SameService(a, b Service) bool {
	return a.Key() == b.Key() && a.Scheduler == b.Scheduler && a.Persistence == b.Persistence && a.Forward == b.Forward
}

// VIPs returns the distinct VIPs of st, sorted.
func (st State) VIPs() []netip.Addr {
	var out []netip.Addr
	for _, s := range st.Services {
		if !slices.Contains(out, s.VIP) {
			out = append(out, s.VIP)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Stats are the counters a driver reads for one service or destination.
type Stats struct {
	// Connections is the number of connections scheduled so far (a counter).
	Connections uint64
	// Active is the number of connections open now (a gauge), where known.
	Active   uint64
	BytesIn  uint64
	BytesOut uint64
}

// ServiceStats are one service's counters and those of its destinations.
type ServiceStats struct {
	Key          Key
	Total        Stats
	Destinations map[netip.AddrPort]Stats
}

// StatsReader is implemented by drivers that count traffic (ipvs and
// userspace; nftables does not, as conntrack accounting is off by default).
type StatsReader interface {
	Stats(ctx context.Context) ([]ServiceStats, error)
}
