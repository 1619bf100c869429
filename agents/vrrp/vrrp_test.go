package vrrp

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/elbcloud/elb/agents/l4/l4test"
	"github.com/elbcloud/elb/events"
)

func TestRenderWritesOneInstancePerPair(t *testing.T) {
	cfg := Config{RouterID: "lvs-1", Instances: []Instance{{
		Name: "pair_a", Interface: "eth0", VirtualRouterID: 51, Priority: 150, Advert: 300 * time.Millisecond,
		UnicastSrc: netip.MustParseAddr("198.18.20.2"), UnicastPeers: []netip.Addr{netip.MustParseAddr("198.18.20.3")},
		VIPs: []netip.Prefix{netip.MustParsePrefix("198.18.20.100/24"), netip.MustParsePrefix("198.18.20.101/32")},
	}}}
	got, err := Render(cfg, "/run/elb/notify.fifo")
	if err != nil {
		t.Fatal(err)
	}
	want := `# Rendered by the elb lvs agent; changes are overwritten.
global_defs {
    router_id lvs-1
    vrrp_version 3
    vrrp_notify_fifo /run/elb/notify.fifo
    vrrp_garp_master_delay 1
    vrrp_garp_master_repeat 3
}

vrrp_instance pair_a {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.3
    unicast_src_ip 198.18.20.2
    unicast_peer {
        198.18.20.3
    }
    virtual_ipaddress {
        198.18.20.100/24 dev eth0
        198.18.20.101/32 dev eth0
    }
}
`
	if string(got) != want {
		t.Fatalf("rendered:\n%s\nwant:\n%s", got, want)
	}
	if _, err := exec.LookPath("keepalived"); err == nil {
		dir := t.TempDir()
		os.WriteFile(dir+"/k.conf", got, 0o600)
		if out, err := exec.Command("keepalived", "--config-test", "-f", dir+"/k.conf").CombinedOutput(); err != nil {
			t.Fatalf("keepalived --config-test: %v\n%s", err, out)
		}
	}
}

func TestRenderRejectsBadInput(t *testing.T) {
	good := Instance{Name: "p", Interface: "eth0", VirtualRouterID: 1, Priority: 100, VIPs: []netip.Prefix{netip.MustParsePrefix("198.18.20.100/32")}}
	for name, mut := range map[string]func(*Instance){
		"config injection in the name": func(i *Instance) { i.Name = "x {\n}" },
		"vrid 0":                       func(i *Instance) { i.VirtualRouterID = 0 },
		"priority 255":                 func(i *Instance) { i.Priority = 255 },
		"no vips":                      func(i *Instance) { i.VIPs = nil },
		"peers without source":         func(i *Instance) { i.UnicastPeers = []netip.Addr{netip.MustParseAddr("198.18.20.3")} },
		"advert not in 10 ms steps":    func(i *Instance) { i.Advert = 15 * time.Millisecond },
	} {
		in := good
		mut(&in)
		if _, err := Render(Config{Instances: []Instance{in}}, "/f"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

// node is one namespace on the test bridge.
type node struct {
	ns   netns.NsHandle
	addr netip.Addr
	link string // veth end on the switch side
}

// lan builds a switch namespace with a bridge and n namespaces attached to
// it, addressed 198.18.20.2.. /24 on eth0.
func lan(t *testing.T, n int) (sw netns.NsHandle, nodes []node) {
	t.Helper()
	sw, err := l4test.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	h, err := netlink.NewHandleAt(sw, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := h.LinkAdd(br); err != nil {
		t.Skipf("no bridge support: %v", err)
	}
	h.LinkSetUp(br)
	for i := range n {
		ns, err := l4test.NewNS()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		name := fmt.Sprintf("port%d", i)
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MasterIndex: br.Index}, PeerName: name + "p"}); err != nil {
			t.Fatal(err)
		}
		l, _ := h.LinkByName(name)
		h.LinkSetMaster(l, br)
		h.LinkSetUp(l)
		p, _ := h.LinkByName(name + "p")
		if err := h.LinkSetNsFd(p, int(ns)); err != nil {
			t.Fatal(err)
		}
		nh, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		if err != nil {
			t.Fatal(err)
		}
		pl, _ := nh.LinkByName(name + "p")
		nh.LinkSetName(pl, "eth0")
		addr := netip.AddrFrom4([4]byte{198, 18, 20, byte(2 + i)})
		a, _ := netlink.ParseAddr(addr.String() + "/24")
		if err := nh.AddrAdd(pl, a); err != nil {
			t.Fatal(err)
		}
		nh.LinkSetUp(pl)
		lo, _ := nh.LinkByName("lo")
		nh.LinkSetUp(lo)
		nh.Close()
		nodes = append(nodes, node{ns: ns, addr: addr, link: name})
	}
	return sw, nodes
}

func hasAddr(ns netns.NsHandle, a netip.Addr) bool {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return false
	}
	defer h.Close()
	addrs, _ := h.AddrList(nil, netlink.FAMILY_V4)
	for _, x := range addrs {
		if x.IP.Equal(a.AsSlice()) {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, timeout time.Duration, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBackupTakesTheVIPWhenTheMasterDies runs keepalived in two namespaces
// (master, backup) on a bridge with a client; the master node dies
// (keepalived killed, link down) and the backup must hold the VIP within 3 s
// with TCP traffic to the VIP resuming.
func TestBackupTakesTheVIPWhenTheMasterDies(t *testing.T) {
	if why := l4test.CanNetNS(); why != "" {
		t.Skip("vrrp failover test: " + why)
	}
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip("vrrp failover test: keepalived missing (apt-get install keepalived)")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("vrrp failover test: nsenter missing (util-linux)")
	}
	sw, nodes := lan(t, 3)
	master, backup, client := nodes[0], nodes[1], nodes[2]
	vip := netip.MustParseAddr("198.18.20.100")

	// Each LVS node serves the VIP's port itself (standing in for IPVS):
	// the answer names the node that holds the VIP.
	for i, n := range []node{master, backup} {
		name := []string{"master", "backup"}[i]
		var ln net.Listener
		if err := l4test.In(n.ns, func() error {
			var err error
			ln, err = net.Listen("tcp", "0.0.0.0:8080")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%s\n", name)
				c.Close()
			}
		}()
	}

	var mu sync.Mutex
	var reports []events.VRRPReport
	start := func(n node, prio int, peer netip.Addr) *Manager {
		m, err := New(Options{NodeID: n.addr.String(), Dir: t.TempDir(),
			Wrap:    []string{"nsenter", fmt.Sprintf("--net=/proc/%d/fd/%d", os.Getpid(), int(n.ns))},
			OnState: func(r events.VRRPReport) { mu.Lock(); reports = append(reports, r); mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		err = m.Apply(Config{RouterID: n.addr.String(), Instances: []Instance{{
			Name: "pair_1", Interface: "eth0", VirtualRouterID: 42, Priority: prio, Backup: prio < 150,
			Advert: 300 * time.Millisecond, UnicastSrc: n.addr, UnicastPeers: []netip.Addr{peer},
			VIPs: []netip.Prefix{netip.PrefixFrom(vip, 24)},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	mm := start(master, 150, backup.addr)
	bm := start(backup, 100, master.addr)

	eventually(t, 10*time.Second, "master holds the vip", func() bool {
		return mm.States()["pair_1"] == StateMaster && hasAddr(master.ns, vip) && bm.States()["pair_1"] == StateBackup
	})
	ask := func() (string, error) {
		var line string
		err := l4test.In(client.ns, func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(vip, 8080).String(), 300*time.Millisecond)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Second))
			line, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		return strings.TrimSpace(line), err
	}
	eventually(t, 5*time.Second, "client reaches the master", func() bool { s, _ := ask(); return s == "master" })

	// The master node dies: keepalived is killed and its link goes down.
	mm.Kill()
	h, _ := netlink.NewHandleAt(sw, unix.NETLINK_ROUTE)
	defer h.Close()
	l, _ := h.LinkByName(master.link)
	h.LinkSetDown(l)
	died := time.Now()

	eventually(t, 3*time.Second, "backup holds the vip", func() bool {
		return hasAddr(backup.ns, vip) && bm.States()["pair_1"] == StateMaster
	})
	took := time.Since(died)
	eventually(t, 5*time.Second, "client traffic resumes on the backup", func() bool { s, _ := ask(); return s == "backup" })
	t.Logf("backup took the vip %s after the master died; traffic resumed %s after", took.Round(10*time.Millisecond), time.Since(died).Round(10*time.Millisecond))

	mu.Lock()
	defer mu.Unlock()
	var sawFailover bool
	for _, r := range reports {
		if r.NodeID == backup.addr.String() && r.State == StateMaster && r.Pair == "pair_1" {
			sawFailover = true
		}
	}
	if !sawFailover {
		t.Fatalf("no MASTER report from the backup: %+v", reports)
	}
}

func TestForNodePutsEveryVIPInThePairInstance(t *testing.T) {
	cfg := &events.NodeConfig{NodeID: "lvs-1", Role: events.RoleLVS, LoadBalancers: []events.LBConfig{
		{ID: "b", VIP: "198.18.2.11"}, {ID: "a", VIP: "198.18.2.10"}, {ID: "c", VIP: "198.18.2.10"}}}
	c, err := ForNode(cfg, Pair{Name: "pair_1", Interface: "eth0", VirtualRouterID: 7, Priority: 100, Backup: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Instances) != 1 || fmt.Sprint(c.Instances[0].VIPs) != "[198.18.2.10/32 198.18.2.11/32]" || c.RouterID != "lvs-1" {
		t.Fatalf("config %+v", c)
	}
	if _, err := ForNode(&events.NodeConfig{NodeID: "n", LoadBalancers: []events.LBConfig{{ID: "x", VIP: "nope"}}}, Pair{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad vip: %v", err)
	}
}
