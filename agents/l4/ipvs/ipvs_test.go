package ipvs

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/elbcloud/elb/agents/l4"
	"github.com/elbcloud/elb/agents/l4/l4test"
)

// needIPVS skips unless this kernel has IPVS (inside the qemu VM of
// test/ipvs-vm, or on a host that has it).
func needIPVS(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("ipvs real-kernel test: needs root")
	}
	if err := Probe(Config{NetNS: ns}); err != nil {
		t.Skipf("ipvs real-kernel test: %v (run `make test-ipvs`, which boots a kernel with IPVS under qemu)", err)
	}
}

func TestProbeSaysWhatIsMissing(t *testing.T) {
	err := Probe(Config{})
	if err == nil {
		t.Skip("this kernel has IPVS")
	}
	if !errors.Is(err, l4.ErrUnavailable) {
		t.Fatalf("probe error %v does not wrap ErrUnavailable", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New succeeded without kernel IPVS")
	}
	t.Logf("probe: %v", err)
}

// TestInKernelProgramsEverySchedulerAndReadsItBack programs services with
// every scheduler, persistence and forwarding method in a fresh namespace
// and reads them back.
func TestInKernelProgramsEverySchedulerAndReadsItBack(t *testing.T) {
	if why := l4test.CanNetNS(); why != "" {
		t.Skip(why)
	}
	topo := l4test.NewTopology(t, 0)
	needIPVS(t, topo.LVS)
	d, err := New(Config{NetNS: topo.LVS, VIPInterface: "elb0"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	vip := netip.MustParseAddr("198.18.2.20")
	var st l4.State
	fwds := []l4.Forward{l4.NAT, l4.DR, l4.TUN}
	for i, sched := range l4.Schedulers {
		s := l4.Service{VIP: vip, Port: uint16(1000 + i), Protocol: l4.TCP, Scheduler: sched, Forward: fwds[i%3],
			Destinations: []l4.Destination{
				{Addr: netip.MustParseAddr("198.18.10.2"), Port: 80, Weight: 1 + i},
				{Addr: netip.MustParseAddr("198.18.11.2"), Port: 80, Weight: 0},
			}}
		if i%2 == 1 {
			s.Persistence = uint32(60 * i)
			s.Protocol = l4.UDP
		}
		st.Services = append(st.Services, s)
	}
	ctx := context.Background()
	if err := d.Apply(ctx, st); err != nil {
		t.Fatalf("apply: %v", err)
	}
	got, err := d.Observed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !l4.Equal(got, st) {
		t.Fatalf("read back differs:\n got %+v\nwant %+v", got, l4.Normalize(st))
	}
	for _, s := range got.Services {
		t.Logf("ipvs: %s %s persistence=%d forward=%s destinations=%v", s.Key(), s.Scheduler, s.Persistence, s.Forward, s.Destinations)
	}
	// The VIP is on the dummy interface.
	nl, err := netlink.NewHandleAt(topo.LVS, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	link, err := nl.LinkByName("elb0")
	if err != nil {
		t.Fatalf("vip interface: %v", err)
	}
	addrs, _ := nl.AddrList(link, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IP.String() != vip.String() {
		t.Fatalf("vip interface addresses %v, want %s/32", addrs, vip)
	}
	// Changing a scheduler and removing services converges.
	st.Services = st.Services[:2]
	st.Services[0].Scheduler = l4.WLC
	if err := d.Apply(ctx, st); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if got, _ := d.Observed(ctx); !l4.Equal(got, st) {
		t.Fatalf("after update read back %+v", got)
	}
	if err := d.Apply(ctx, l4.State{}); err != nil {
		t.Fatalf("apply empty: %v", err)
	}
	if got, _ := d.Observed(ctx); len(got.Services) != 0 {
		t.Fatalf("services left: %+v", got)
	}
	if addrs, _ := nl.AddrList(link, netlink.FAMILY_V4); len(addrs) != 0 {
		t.Fatalf("vips left: %v", addrs)
	}
}

// TestInKernelPassesTheBehaviourSuite sends real traffic through IPVS (NAT)
// between namespaces.
func TestInKernelPassesTheBehaviourSuite(t *testing.T) {
	if why := l4test.CanNetNS(); why != "" {
		t.Skip(why)
	}
	topo := l4test.NewTopology(t, 3)
	needIPVS(t, topo.LVS)
	env := topo.Env()
	env.NewDriver = func(t *testing.T) l4.Driver {
		d, err := New(Config{NetNS: topo.LVS, VIPInterface: "elb0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Flush(); d.Close() })
		return d
	}
	l4test.Run(t, env)
}

// TestInKernelCountsConnections reads IPVS's counters back as l4 stats.
func TestInKernelCountsConnections(t *testing.T) {
	if why := l4test.CanNetNS(); why != "" {
		t.Skip(why)
	}
	topo := l4test.NewTopology(t, 1)
	needIPVS(t, topo.LVS)
	d, err := New(Config{NetNS: topo.LVS, VIPInterface: "elb0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Flush(); d.Close() }()
	be := netip.AddrPortFrom(topo.BackendAddr[0], 7000)
	var ln net.Listener
	if err := l4test.In(topo.Backends[0], func() error {
		var err error
		ln, err = net.Listen("tcp", be.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello\n"))
			c.Close()
		}
	}()
	ctx := context.Background()
	st := l4.State{Services: []l4.Service{{VIP: topo.VIP, Port: 70, Protocol: l4.TCP, Scheduler: l4.RR, Forward: l4.NAT,
		Destinations: []l4.Destination{{Addr: be.Addr(), Port: be.Port(), Weight: 1}}}}}
	if err := d.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := l4test.In(topo.Client, func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(topo.VIP, 70).String(), 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * time.Second))
			_, err = io.ReadAll(c)
			return err
		}); err != nil {
			t.Fatalf("connect through ipvs: %v", err)
		}
	}
	// The kernel folds its per-cpu counters into what it reports every 2 s
	// (the rate estimator's timer).
	var s l4.ServiceStats
	deadline := time.Now().Add(10 * time.Second)
	for {
		stats, err := d.Stats(ctx)
		if err != nil || len(stats) != 1 {
			t.Fatalf("stats %+v %v", stats, err)
		}
		s = stats[0]
		if s.Total.Connections == 3 && s.Total.BytesOut > 0 && s.Destinations[be].Connections == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want 3 connections with bytes", s)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("ipvs stats: %+v", s)
}
