// Package ipvs is the L4 driver for the kernel's IP Virtual Server (LVS):
// virtual services and their weighted destinations through
// github.com/moby/ipvs, and VIPs on an interface through
// github.com/vishvananda/netlink.
//
// moby/ipvs does not fail without kernel IPVS: New returns a handle whose
// commands silently do nothing (and GetConfig panics). Probe therefore asks
// generic netlink for the "IPVS" family first, and New refuses to build a
// driver where it is missing.
//
// The driver owns every IPVS service of its network namespace (an LVS node
// is dedicated to the job): services it was not asked for are removed.
package ipvs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/elbcloud/elb/agents/l4"
)

// Name is the driver name.
const Name = "ipvs"

// Service flags (include/uapi/linux/ip_vs.h).
const (
	flagPersistent = 0x0001
)

// Config configures the driver.
type Config struct {
	// VIPInterface is where the driver adds each VIP as a /32 (/128)
	// address: a dummy interface it creates if missing (e.g. "elb0"), or
	// "lo". Empty means VIPs are managed elsewhere (keepalived).
	VIPInterface string
	// NetNS, when open, is the namespace to program instead of the current.
	NetNS netns.NsHandle
	Log   *slog.Logger
}

// Driver programs IPVS.
type Driver struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	h  *ipvs.Handle
	nl *netlink.Handle
}

var _ l4.Driver = (*Driver)(nil)
var _ l4.StatsReader = (*Driver)(nil)

func (c Config) nsOpen() bool { return c.NetNS.IsOpen() && c.NetNS != 0 }

func (c Config) netlink(families ...int) (*netlink.Handle, error) {
	if c.nsOpen() {
		return netlink.NewHandleAt(c.NetNS, families...)
	}
	return netlink.NewHandle(families...)
}

// Probe checks that the kernel has IPVS, saying what is missing otherwise.
func Probe(cfg Config) error {
	h, err := cfg.netlink(unix.NETLINK_GENERIC)
	if err != nil {
		return fmt.Errorf("%w: ipvs: generic netlink: %w", l4.ErrUnavailable, err)
	}
	defer h.Close()
	if _, err := h.GenlFamilyGet("IPVS"); err != nil {
		return fmt.Errorf("%w: ipvs: the kernel has no IPVS generic netlink family (module ip_vs not loaded or not built: try `modprobe ip_vs`): %w", l4.ErrUnavailable, err)
	}
	return nil
}

// New probes the kernel and returns a driver.
func New(cfg Config) (*Driver, error) {
	if err := Probe(cfg); err != nil {
		return nil, err
	}
	path := ""
	if cfg.nsOpen() {
		path = fmt.Sprintf("/proc/self/fd/%d", int(cfg.NetNS))
	}
	h, err := ipvs.New(path)
	if err != nil {
		return nil, fmt.Errorf("ipvs: open: %w", err)
	}
	nl, err := cfg.netlink(unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("ipvs: rtnetlink: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Driver{cfg: cfg, log: log.With("driver", Name), h: h, nl: nl}, nil
}

// Name implements l4.Driver.
func (d *Driver) Name() string { return Name }

// Close implements l4.Driver; services and VIPs stay programmed.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h != nil {
		d.h.Close()
		d.nl.Close()
		d.h = nil
	}
	return nil
}

// Flush removes every IPVS service and the driver's VIPs (tests, decommission).
func (d *Driver) Flush() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return net.ErrClosed
	}
	return errors.Join(d.h.Flush(), d.syncVIPs(nil))
}

func family(a netip.Addr) uint16 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func fwdFlags(f l4.Forward) uint32 {
	switch f {
	case l4.DR:
		return ipvs.ConnectionFlagDirectRoute
	case l4.TUN:
		return ipvs.ConnectionFlagTunnel
	default:
		return ipvs.ConnectionFlagMasq
	}
}

func fwdOf(flags uint32) l4.Forward {
	switch flags & ipvs.ConnectionFlagFwdMask {
	case ipvs.ConnectionFlagDirectRoute:
		return l4.DR
	case ipvs.ConnectionFlagTunnel:
		return l4.TUN
	default:
		return l4.NAT
	}
}

func toService(s l4.Service) *ipvs.Service {
	proto := uint16(unix.IPPROTO_TCP)
	if s.Protocol == l4.UDP {
		proto = unix.IPPROTO_UDP
	}
	svc := &ipvs.Service{Address: net.IP(s.VIP.AsSlice()), Protocol: proto, Port: s.Port,
		SchedName: s.Scheduler, AddressFamily: family(s.VIP), Netmask: 0xFFFFFFFF}
	if s.VIP.Is6() {
		svc.Netmask = 128
	}
	if s.Persistence > 0 {
		svc.Flags = flagPersistent
		svc.Timeout = s.Persistence
	}
	return svc
}

func toDest(s l4.Service, d l4.Destination) *ipvs.Destination {
	return &ipvs.Destination{Address: net.IP(d.Addr.AsSlice()), Port: d.Port, Weight: d.Weight,
		ConnectionFlags: fwdFlags(s.Forward), AddressFamily: family(d.Addr)}
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// fromService converts a kernel service; ok is false for services this
// model does not describe (firewall-mark services).
func fromService(s *ipvs.Service) (l4.Service, bool) {
	if s.FWMark != 0 {
		return l4.Service{}, false
	}
	out := l4.Service{VIP: addrOf(s.Address), Port: s.Port, Scheduler: s.SchedName, Forward: l4.NAT}
	switch s.Protocol {
	case unix.IPPROTO_TCP:
		out.Protocol = l4.TCP
	case unix.IPPROTO_UDP:
		out.Protocol = l4.UDP
	default:
		return l4.Service{}, false
	}
	if s.Flags&flagPersistent != 0 {
		out.Persistence = s.Timeout
	}
	return out, true
}

// Apply implements l4.Driver.
func (d *Driver) Apply(ctx context.Context, desired l4.State) error {
	if err := desired.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return net.ErrClosed
	}
	// VIPs first, so that a service never exists for an address that the
	// node would not accept.
	var errs []error
	if err := d.syncVIPs(desired.VIPs()); err != nil {
		errs = append(errs, err)
	}
	have, err := d.h.GetServices()
	if err != nil {
		return fmt.Errorf("ipvs: list services: %w", err)
	}
	haveByKey := map[l4.Key]*ipvs.Service{}
	for _, s := range have {
		if m, ok := fromService(s); ok {
			haveByKey[m.Key()] = s
		}
	}
	want := map[l4.Key]bool{}
	for _, s := range desired.Services {
		want[s.Key()] = true
		if err := d.applyService(s, haveByKey[s.Key()]); err != nil {
			errs = append(errs, fmt.Errorf("ipvs: service %s: %w", s.Key(), err))
		}
	}
	for k, s := range haveByKey {
		if !want[k] {
			if err := d.h.DelService(s); err != nil {
				errs = append(errs, fmt.Errorf("ipvs: delete service %s: %w", k, err))
			} else {
				d.log.Info("service removed", "service", k.String())
			}
		}
	}
	return errors.Join(errs...)
}

func (d *Driver) applyService(s l4.Service, have *ipvs.Service) error {
	svc := toService(s)
	if have == nil {
		if err := d.h.NewService(svc); err != nil {
			return fmt.Errorf("create (is ip_vs_%s loaded?): %w", s.Scheduler, err)
		}
		d.log.Info("service added", "service", s.Key().String(), "scheduler", s.Scheduler)
	} else if cur, _ := fromService(have); !l4.SameService(cur, withForward(s, cur.Forward)) {
		if err := d.h.UpdateService(svc); err != nil {
			return fmt.Errorf("update: %w", err)
		}
	}
	dsts, err := d.h.GetDestinations(svc)
	if err != nil {
		return fmt.Errorf("list destinations: %w", err)
	}
	haveDst := map[netip.AddrPort]*ipvs.Destination{}
	for _, x := range dsts {
		haveDst[netip.AddrPortFrom(addrOf(x.Address), x.Port)] = x
	}
	var errs []error
	for _, dst := range s.Destinations {
		want := toDest(s, dst)
		cur, ok := haveDst[dst.AddrPort()]
		delete(haveDst, dst.AddrPort())
		switch {
		case !ok:
			err = d.h.NewDestination(svc, want)
		case cur.Weight != want.Weight || cur.ConnectionFlags&ipvs.ConnectionFlagFwdMask != want.ConnectionFlags:
			err = d.h.UpdateDestination(svc, want)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("destination %s: %w", dst.AddrPort(), err))
		}
	}
	for ap, x := range haveDst {
		if err := d.h.DelDestination(svc, x); err != nil {
			errs = append(errs, fmt.Errorf("delete destination %s: %w", ap, err))
		}
	}
	return errors.Join(errs...)
}

func withForward(s l4.Service, f l4.Forward) l4.Service {
	s.Forward = f
	return s
}

// Observed implements l4.Driver.
func (d *Driver) Observed(ctx context.Context) (l4.State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return l4.State{}, net.ErrClosed
	}
	have, err := d.h.GetServices()
	if err != nil {
		return l4.State{}, fmt.Errorf("ipvs: list services: %w", err)
	}
	var st l4.State
	for _, s := range have {
		m, ok := fromService(s)
		if !ok {
			continue
		}
		dsts, err := d.h.GetDestinations(s)
		if err != nil {
			return l4.State{}, fmt.Errorf("ipvs: destinations of %s: %w", m.Key(), err)
		}
		m.Destinations = []l4.Destination{}
		for i, x := range dsts {
			if i == 0 {
				// The model has one forwarding method per service; IPVS
				// keeps it per destination.
				m.Forward = fwdOf(x.ConnectionFlags)
			}
			m.Destinations = append(m.Destinations, l4.Destination{Addr: addrOf(x.Address), Port: x.Port, Weight: x.Weight})
		}
		st.Services = append(st.Services, m)
	}
	return l4.Normalize(st), nil
}

// Stats implements l4.StatsReader from the kernel's counters.
func (d *Driver) Stats(ctx context.Context) ([]l4.ServiceStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return nil, net.ErrClosed
	}
	have, err := d.h.GetServices()
	if err != nil {
		return nil, fmt.Errorf("ipvs: list services: %w", err)
	}
	var out []l4.ServiceStats
	for _, s := range have {
		m, ok := fromService(s)
		if !ok {
			continue
		}
		ss := l4.ServiceStats{Key: m.Key(), Destinations: map[netip.AddrPort]l4.Stats{},
			Total: l4.Stats{Connections: uint64(s.Stats.Connections), BytesIn: s.Stats.BytesIn, BytesOut: s.Stats.BytesOut}}
		dsts, err := d.h.GetDestinations(s)
		if err != nil {
			return nil, fmt.Errorf("ipvs: destinations of %s: %w", m.Key(), err)
		}
		for _, x := range dsts {
			active := uint64(max(0, x.ActiveConnections))
			ss.Total.Active += active
			ss.Destinations[netip.AddrPortFrom(addrOf(x.Address), x.Port)] = l4.Stats{Connections: uint64(x.Stats.Connections),
				Active: active, BytesIn: x.Stats.BytesIn, BytesOut: x.Stats.BytesOut}
		}
		out = append(out, ss)
	}
	return out, nil
}

// syncVIPs makes the VIP interface carry exactly vips (as host routes),
// creating a dummy interface when needed. On "lo" it leaves the loopback
// networks alone. d.mu must be held.
func (d *Driver) syncVIPs(vips []netip.Addr) error {
	name := d.cfg.VIPInterface
	if name == "" {
		return nil
	}
	link, err := d.nl.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) || name == "lo" {
			return fmt.Errorf("ipvs: vip interface %s: %w", name, err)
		}
		if err := d.nl.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
			return fmt.Errorf("ipvs: create dummy %s (is the dummy module loaded?): %w", name, err)
		}
		if link, err = d.nl.LinkByName(name); err != nil {
			return fmt.Errorf("ipvs: vip interface %s: %w", name, err)
		}
	}
	if err := d.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("ipvs: set %s up: %w", name, err)
	}
	addrs, err := d.nl.AddrList(link, netlink.FAMILY_ALL)
	for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 5; try++ {
		// The address table changed during the dump: read it again.
		addrs, err = d.nl.AddrList(link, netlink.FAMILY_ALL)
	}
	if err != nil {
		return fmt.Errorf("ipvs: list addresses of %s: %w", name, err)
	}
	var errs []error
	have := map[netip.Addr]bool{}
	for _, a := range addrs {
		ip := addrOf(a.IP)
		ones, bits := a.Mask.Size()
		if ones != bits || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			continue // not a VIP of ours
		}
		have[ip] = true
		if !slices.Contains(vips, ip) {
			if err := d.nl.AddrDel(link, &a); err != nil {
				errs = append(errs, fmt.Errorf("ipvs: remove vip %s: %w", ip, err))
			}
		}
	}
	for _, v := range vips {
		if have[v] {
			continue
		}
		bits := 32
		if v.Is6() {
			bits = 128
		}
		p := netip.PrefixFrom(v, bits)
		a := &netlink.Addr{IPNet: &net.IPNet{IP: v.AsSlice(), Mask: net.CIDRMask(bits, bits)}}
		if err := d.nl.AddrAdd(link, a); err != nil {
			errs = append(errs, fmt.Errorf("ipvs: add vip %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
