package l4test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Topology is a small L4 lab in unnamed network namespaces:
//
//	client (198.18.0.2-7) ─veth─ lvs (198.18.0.1) ─veth─ backend i (198.18.1i.2, gw 198.18.1i.1)
//
// The lvs namespace forwards IPv4; every other namespace routes through it.
// Addresses are from the benchmarking range 198.18.0.0/15 (RFC 2544) and
// exist only inside these namespaces. The VIP is routed to the lvs
// namespace but not configured anywhere (drivers add it where they need it).
type Topology struct {
	Client, LVS netns.NsHandle
	Backends    []netns.NsHandle
	VIP         netip.Addr
	ClientAddrs []netip.Addr
	BackendAddr []netip.Addr
}

// Topology addresses.
var (
	TopoVIP = netip.MustParseAddr("198.18.2.10")
)

// CanNetNS returns why namespaces cannot be made here, or "" when they can.
func CanNetNS() string {
	if os.Geteuid() != 0 {
		return "needs root to create network namespaces"
	}
	return ""
}

// In runs fn with the calling goroutine's OS thread in ns. Sockets created
// by fn stay in ns afterwards.
func In(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	// A fresh goroutine whose thread is thrown away if restoring fails, so
	// no other goroutine ever runs in the wrong namespace.
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// NewNS creates an unnamed network namespace; close the handle to free it.
func NewNS() (netns.NsHandle, error) {
	var h netns.NsHandle
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		var err error
		h, err = netns.New()
		errc <- err
	}()
	return h, <-errc
}

// NewTopology builds the lab with n backends; t.Cleanup tears it down.
func NewTopology(t testing.TB, nBackends int) *Topology {
	t.Helper()
	topo, err := BuildTopology(nBackends)
	if err != nil {
		t.Fatalf("build namespaces: %v", err)
	}
	t.Cleanup(topo.Close)
	return topo
}

// BuildTopology is NewTopology without testing.
func BuildTopology(nBackends int) (*Topology, error) {
	topo := &Topology{VIP: TopoVIP}
	var err error
	if topo.Client, err = NewNS(); err != nil {
		return nil, fmt.Errorf("client ns: %w", err)
	}
	if topo.LVS, err = NewNS(); err != nil {
		return nil, fmt.Errorf("lvs ns: %w", err)
	}
	for range nBackends {
		h, err := NewNS()
		if err != nil {
			topo.Close()
			return nil, fmt.Errorf("backend ns: %w", err)
		}
		topo.Backends = append(topo.Backends, h)
	}
	for i := 2; i < 8; i++ {
		topo.ClientAddrs = append(topo.ClientAddrs, netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}))
	}
	if err := topo.wire(); err != nil {
		topo.Close()
		return nil, err
	}
	return topo, nil
}

func (topo *Topology) wire() error {
	lvs, err := netlink.NewHandleAt(topo.LVS, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer lvs.Close()
	if err := linkUp(lvs, "lo"); err != nil {
		return err
	}
	if err := In(topo.LVS, func() error {
		return errors.Join(
			os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644),
			// IPVS NAT needs conntrack to see the replies it rewrites.
			writeIfExists("/proc/sys/net/ipv4/vs/conntrack", "1"))
	}); err != nil {
		return fmt.Errorf("enable forwarding: %w", err)
	}
	// client side
	var clientAddrs []string
	for _, a := range topo.ClientAddrs {
		clientAddrs = append(clientAddrs, a.String()+"/24")
	}
	if err := pair(lvs, topo.LVS, "to-client", []string{"198.18.0.1/24"}, topo.Client, "eth0", clientAddrs, "198.18.0.1"); err != nil {
		return fmt.Errorf("client link: %w", err)
	}
	for i, b := range topo.Backends {
		gw := fmt.Sprintf("198.18.%d.1", 10+i)
		addr := netip.AddrFrom4([4]byte{198, 18, byte(10 + i), 2})
		topo.BackendAddr = append(topo.BackendAddr, addr)
		if err := pair(lvs, topo.LVS, fmt.Sprintf("to-b%d", i), []string{gw + "/24"}, b, "eth0", []string{addr.String() + "/24"}, gw); err != nil {
			return fmt.Errorf("backend %d link: %w", i, err)
		}
	}
	return nil
}

func writeIfExists(path, v string) error {
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	return os.WriteFile(path, []byte(v), 0o644)
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	return h.LinkSetUp(l)
}

// pair creates a veth between the lvs namespace (name local) and peer ns
// (name remote), addresses both ends, and routes the peer through gw.
func pair(lvs *netlink.Handle, lvsNS netns.NsHandle, local string, localAddrs []string, peerNS netns.NsHandle, remote string, remoteAddrs []string, gw string) error {
	tmp := local + "p"
	if err := lvs.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: local}, PeerName: tmp}); err != nil {
		return fmt.Errorf("add veth (is the veth module loaded?): %w", err)
	}
	p, err := lvs.LinkByName(tmp)
	if err != nil {
		return err
	}
	if err := lvs.LinkSetNsFd(p, int(peerNS)); err != nil {
		return err
	}
	for _, a := range localAddrs {
		ad, _ := netlink.ParseAddr(a)
		l, _ := lvs.LinkByName(local)
		if err := lvs.AddrAdd(l, ad); err != nil {
			return err
		}
	}
	if err := linkUp(lvs, local); err != nil {
		return err
	}
	ph, err := netlink.NewHandleAt(peerNS, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer ph.Close()
	pl, err := ph.LinkByName(tmp)
	if err != nil {
		return err
	}
	if err := ph.LinkSetName(pl, remote); err != nil {
		return err
	}
	for _, a := range remoteAddrs {
		ad, _ := netlink.ParseAddr(a)
		if err := ph.AddrAdd(pl, ad); err != nil {
			return err
		}
	}
	if err := linkUp(ph, "lo"); err != nil {
		return err
	}
	if err := linkUp(ph, remote); err != nil {
		return err
	}
	return ph.RouteAdd(&netlink.Route{Dst: nil, Gw: net.ParseIP(gw), LinkIndex: pl.Attrs().Index})
}

// Close releases the namespaces (they vanish with their last socket).
func (topo *Topology) Close() {
	for _, h := range append([]netns.NsHandle{topo.Client, topo.LVS}, topo.Backends...) {
		if h.IsOpen() {
			h.Close()
		}
	}
}

// Env returns a behaviour-suite environment on this topology.
func (topo *Topology) Env() Env {
	return Env{
		VIP:       topo.VIP,
		Port:      80,
		Backends:  topo.BackendAddr,
		Clients:   topo.ClientAddrs,
		InBackend: func(i int, fn func() error) error { return In(topo.Backends[i], fn) },
		InClient:  func(fn func() error) error { return In(topo.Client, fn) },
		Forward:   "nat",
	}
}
