package userspace

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/elbcloud/elb/agents/l4"
	"github.com/elbcloud/elb/agents/l4/l4test"
)

func TestUserspaceDriverPassesTheBehaviourSuite(t *testing.T) {
	env := l4test.Env{
		NewDriver: func(t *testing.T) l4.Driver {
			d := New(Config{})
			t.Cleanup(func() { d.Close() })
			return d
		},
		// Any 127/8 address is local on Linux: a VIP, backends and clients
		// of their own keep this test apart from everything else.
		VIP:      netip.MustParseAddr("127.0.77.10"),
		Port:     17000,
		Backends: []netip.Addr{netip.MustParseAddr("127.0.77.21"), netip.MustParseAddr("127.0.77.22"), netip.MustParseAddr("127.0.77.23")},
		Clients: []netip.Addr{netip.MustParseAddr("127.0.78.1"), netip.MustParseAddr("127.0.78.2"),
			netip.MustParseAddr("127.0.78.3"), netip.MustParseAddr("127.0.78.4"), netip.MustParseAddr("127.0.78.5"),
			netip.MustParseAddr("127.0.78.6")},
	}
	l4test.Run(t, env)
}

func TestMaglevTableGivesEveryBackendAShareByWeight(t *testing.T) {
	mk := func(ws ...int) []member {
		var ms []member
		for i, w := range ws {
			ms = append(ms, member{b: &backend{ap: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)}), 80)}, weight: w})
		}
		return ms
	}
	tab := maglevTable(mk(1, 1, 2), tableSize)
	count := make([]int, 3)
	for _, i := range tab {
		count[i]++
	}
	if count[2] < count[0]*3/2 || count[0] == 0 || count[1] == 0 {
		t.Fatalf("maglev shares %v do not follow weights 1,1,2", count)
	}
	// Adding a backend moves only part of the table.
	tab2 := maglevTable(mk(1, 1, 2, 1), tableSize)
	moved := 0
	for i := range tab {
		if tab[i] != tab2[i] {
			moved++
		}
	}
	if moved > tableSize/2 {
		t.Fatalf("adding one backend moved %d of %d slots", moved, tableSize)
	}
}

// TestBulkTransferSurvivesEveryCopyMode pushes 4 MiB each way through the
// forwarder: read/write, the switch to splice, and splice only.
func TestBulkTransferSurvivesEveryCopyMode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	be := netip.MustParseAddrPort(ln.Addr().String())
	payload := make([]byte, 4<<20)
	rand.Read(payload)
	for i, mode := range []string{CopyBuffer, CopyAuto, CopySplice} {
		d := New(Config{Copy: mode})
		vip := netip.AddrPortFrom(netip.MustParseAddr("127.0.77.40"), uint16(17050+i))
		err := d.Apply(context.Background(), l4.State{Services: []l4.Service{{VIP: vip.Addr(), Port: vip.Port(), Protocol: l4.TCP,
			Scheduler: l4.RR, Forward: l4.NAT, Destinations: []l4.Destination{{Addr: be.Addr(), Port: be.Port(), Weight: 1}}}}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", vip.String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		go func() { c.Write(payload); c.(*net.TCPConn).CloseWrite() }()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("copy mode %q: got %d bytes (%v), want the %d sent", mode, len(got), err, len(payload))
		}
		stats, _ := d.Stats(context.Background())
		if len(stats) != 1 || stats[0].Total.BytesIn != uint64(len(payload)) {
			t.Fatalf("copy mode %q: stats %+v", mode, stats)
		}
		d.Close()
	}
}

// TestBackendResetEndsTheClientConnection checks that a reset from the
// backend closes the client side too, instead of leaving the forwarder
// waiting for a client that never hangs up.
func TestBackendResetEndsTheClientConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0) // close sends RST
			c.Close()
		}
	}()
	be := netip.MustParseAddrPort(ln.Addr().String())
	d := New(Config{})
	defer d.Close()
	vip := netip.AddrPortFrom(netip.MustParseAddr("127.0.77.41"), 17060)
	if err := d.Apply(context.Background(), l4.State{Services: []l4.Service{{VIP: vip.Addr(), Port: vip.Port(), Protocol: l4.TCP,
		Scheduler: l4.RR, Forward: l4.NAT, Destinations: []l4.Destination{{Addr: be.Addr(), Port: be.Port(), Weight: 1}}}}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", vip.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() // the client never hangs up by itself
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from a backend that reset")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("client connection still open after the backend reset")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := d.Stats(context.Background())
		if len(st) == 1 && st[0].Total.Active == 0 && st[0].Total.Connections == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("forwarder still holds the connection: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
