// Package l4test is the behaviour suite every l4.Driver passes, and the
// network-namespace topology the kernel drivers' real tests run in.
package l4test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/agents/l4"
)

// Env is where the suite runs a driver: a VIP, three backend addresses and
// some client source addresses, plus how to enter the backends' and the
// client's network context (a namespace, or nothing on loopback).
type Env struct {
	// NewDriver returns a fresh driver with nothing programmed.
	NewDriver func(t *testing.T) l4.Driver
	VIP       netip.Addr
	// Port is the first VIP port the suite uses; it uses a few after it.
	Port     uint16
	Backends []netip.Addr // at least 3
	Clients  []netip.Addr // at least 4 source addresses
	// InBackend runs fn in backend i's network context; InClient in the
	// client's. nil means "right here".
	InBackend func(i int, fn func() error) error
	InClient  func(fn func() error) error
	Forward   l4.Forward
	// SkipUDP leaves out the UDP case.
	SkipUDP bool
}

func (e *Env) inBackend(i int, fn func() error) error {
	if e.InBackend == nil {
		return fn()
	}
	return e.InBackend(i, fn)
}

func (e *Env) inClient(fn func() error) error {
	if e.InClient == nil {
		return fn()
	}
	return e.InClient(fn)
}

// Run runs the behaviour suite.
func Run(t *testing.T, env Env) {
	if len(env.Backends) < 3 || len(env.Clients) < 4 {
		t.Fatalf("l4test: env needs 3 backends and 4 clients")
	}
	t.Run("applies and reads back services", func(t *testing.T) { testApplyObserved(t, env) })
	t.Run("round robin spreads connections over every backend", func(t *testing.T) { testSpread(t, env, l4.RR, []int{1, 1, 1}) })
	t.Run("weighted round robin follows the weights", func(t *testing.T) { testSpread(t, env, l4.WRR, []int{1, 2, 3}) })
	t.Run("source hash keeps each client on one backend", func(t *testing.T) { testSticky(t, env) })
	t.Run("weight 0 drains without breaking established connections", func(t *testing.T) { testDrain(t, env) })
	if !env.SkipUDP {
		t.Run("udp datagrams reach the backends", func(t *testing.T) { testUDP(t, env) })
	}
}

// backends starts identifying echo servers: each TCP connection first gets
// "b<i>\n" and then an echo of what it sends; each UDP datagram gets "b<i>".
func backends(t *testing.T, env Env, port uint16, udp bool) []l4.Destination {
	t.Helper()
	var dsts []l4.Destination
	for i := range 3 {
		ap := netip.AddrPortFrom(env.Backends[i], port)
		id := fmt.Sprintf("b%d", i)
		err := env.inBackend(i, func() error {
			if udp {
				pc, err := net.ListenPacket("udp", ap.String())
				if err != nil {
					return err
				}
				t.Cleanup(func() { pc.Close() })
				go func() {
					buf := make([]byte, 1500)
					for {
						_, from, err := pc.ReadFrom(buf)
						if err != nil {
							return
						}
						pc.WriteTo([]byte(id), from)
					}
				}()
				return nil
			}
			ln, err := net.Listen("tcp", ap.String())
			if err != nil {
				return err
			}
			var mu sync.Mutex
			var conns []net.Conn
			t.Cleanup(func() {
				ln.Close()
				mu.Lock()
				defer mu.Unlock()
				for _, c := range conns {
					c.Close()
				}
			})
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
					go func() {
						defer c.Close()
						if _, err := fmt.Fprintf(c, "%s\n", id); err != nil {
							return
						}
						buf := make([]byte, 4096)
						for {
							n, err := c.Read(buf)
							if err != nil {
								return
							}
							if _, err := c.Write(buf[:n]); err != nil {
								return
							}
						}
					}()
				}
			}()
			return nil
		})
		if err != nil {
			t.Fatalf("start backend %d on %s: %v", i, ap, err)
		}
		dsts = append(dsts, l4.Destination{Addr: env.Backends[i], Port: port, Weight: 1})
	}
	return dsts
}

// conn is a client connection that knows which backend answered.
type conn struct {
	net.Conn
	r       *bufio.Reader
	backend string
}

func dial(t *testing.T, env Env, client int, to netip.AddrPort) (*conn, error) {
	t.Helper()
	var c net.Conn
	err := env.inClient(func() error {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: env.Clients[client].AsSlice()}}
		var err error
		c, err = d.Dial("tcp", to.String())
		return err
	})
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("read backend id: %w", err)
	}
	return &conn{Conn: c, r: r, backend: strings.TrimSpace(line)}, nil
}

// whoAnswers opens (and closes) one connection and returns the backend id.
// Retries a few times: right after Apply a kernel data plane may need a
// moment, and a SYN may race the rule swap.
func whoAnswers(t *testing.T, env Env, client int, to netip.AddrPort) string {
	t.Helper()
	var last error
	for range 20 {
		c, err := dial(t, env, client, to)
		if err == nil {
			c.Close()
			return c.backend
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no backend answers at %s from client %d: %v", to, client, last)
	return ""
}

func apply(t *testing.T, d l4.Driver, st l4.State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Apply(ctx, st); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

func svc(env Env, port uint16, proto l4.Protocol, sched string, dsts []l4.Destination) l4.Service {
	fwd := env.Forward
	if fwd == "" {
		fwd = l4.NAT
	}
	return l4.Service{VIP: env.VIP, Port: port, Protocol: proto, Scheduler: sched, Forward: fwd, Destinations: dsts}
}

func testApplyObserved(t *testing.T, env Env) {
	d := env.NewDriver(t)
	ctx := context.Background()
	dsts := []l4.Destination{
		{Addr: env.Backends[0], Port: 8080, Weight: 1},
		{Addr: env.Backends[1], Port: 8080, Weight: 3},
		{Addr: env.Backends[2], Port: 8081, Weight: 0},
	}
	a := svc(env, env.Port, l4.TCP, l4.WRR, dsts)
	b := svc(env, env.Port+1, l4.UDP, l4.SH, dsts[:2])
	b.Persistence = 300
	want := l4.State{Services: []l4.Service{a, b}}
	apply(t, d, want)
	got, err := d.Observed(ctx)
	if err != nil {
		t.Fatalf("observed: %v", err)
	}
	if !l4.Equal(got, want) {
		t.Fatalf("observed differs from desired:\n got %+v\nwant %+v", l4.Normalize(got), l4.Normalize(want))
	}
	// Applying again changes nothing.
	apply(t, d, want)

	// An invalid state is refused and leaves the data plane as it was.
	bad := want
	bad.Services = append([]l4.Service{}, want.Services...)
	bad.Services[0].Scheduler = "nonsense"
	if err := d.Apply(ctx, bad); !errors.Is(err, l4.ErrInvalid) {
		t.Fatalf("apply invalid: err = %v, want ErrInvalid", err)
	}
	if got, _ := d.Observed(ctx); !l4.Equal(got, want) {
		t.Fatalf("an invalid apply changed the data plane: %+v", got)
	}

	// Changing weights and removing a service converge.
	a.Destinations = []l4.Destination{{Addr: env.Backends[0], Port: 8080, Weight: 5}}
	a.Scheduler = l4.LC
	want = l4.State{Services: []l4.Service{a}}
	apply(t, d, want)
	if got, _ := d.Observed(ctx); !l4.Equal(got, want) {
		t.Fatalf("after update observed %+v, want %+v", l4.Normalize(got), l4.Normalize(want))
	}
	apply(t, d, l4.State{})
	if got, _ := d.Observed(ctx); len(got.Services) != 0 {
		t.Fatalf("after removing everything observed %+v", got)
	}
}

func testSpread(t *testing.T, env Env, sched string, weights []int) {
	port := env.Port + 2
	dsts := backends(t, env, 9000, false)
	total := 0
	for i := range dsts {
		dsts[i].Weight = weights[i]
		total += weights[i]
	}
	d := env.NewDriver(t)
	apply(t, d, l4.State{Services: []l4.Service{svc(env, port, l4.TCP, sched, dsts)}})
	n := 20 * total
	counts := map[string]int{}
	vip := netip.AddrPortFrom(env.VIP, port)
	for i := range n {
		counts[whoAnswers(t, env, i%len(env.Clients), vip)]++
	}
	for i, w := range weights {
		want := n * w / total
		got := counts[fmt.Sprintf("b%d", i)]
		if got < want/2 || got > want*3/2 {
			t.Errorf("backend %d (weight %d) got %d of %d connections, want about %d (all: %v)", i, w, got, n, want, counts)
		}
	}
}

func testSticky(t *testing.T, env Env) {
	port := env.Port + 3
	dsts := backends(t, env, 9001, false)
	d := env.NewDriver(t)
	apply(t, d, l4.State{Services: []l4.Service{svc(env, port, l4.TCP, l4.SH, dsts)}})
	vip := netip.AddrPortFrom(env.VIP, port)
	used := map[string]bool{}
	for c := range env.Clients {
		first := whoAnswers(t, env, c, vip)
		used[first] = true
		for range 5 {
			if got := whoAnswers(t, env, c, vip); got != first {
				t.Fatalf("client %s moved from %s to %s", env.Clients[c], first, got)
			}
		}
	}
	t.Logf("%d clients used backends %v", len(env.Clients), used)
}

func testDrain(t *testing.T, env Env) {
	port := env.Port + 4
	dsts := backends(t, env, 9002, false)
	d := env.NewDriver(t)
	s := svc(env, port, l4.TCP, l4.RR, dsts)
	apply(t, d, l4.State{Services: []l4.Service{s}})
	vip := netip.AddrPortFrom(env.VIP, port)
	var held *conn
	var err error
	for range 20 {
		if held, err = dial(t, env, 0, vip); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer held.Close()
	var drained int
	fmt.Sscanf(held.backend, "b%d", &drained)
	s.Destinations = append([]l4.Destination(nil), dsts...)
	s.Destinations[drained].Weight = 0
	apply(t, d, l4.State{Services: []l4.Service{s}})

	for i := range 30 {
		if got := whoAnswers(t, env, i%len(env.Clients), vip); got == held.backend {
			t.Fatalf("new connection %d went to drained backend %s", i, got)
		}
	}
	held.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(held, "still there\n"); err != nil {
		t.Fatalf("established connection broke after drain: %v", err)
	}
	line, err := held.r.ReadString('\n')
	if err != nil || line != "still there\n" {
		t.Fatalf("established connection broke after drain: %q %v", line, err)
	}
}

func testUDP(t *testing.T, env Env) {
	port := env.Port + 5
	dsts := backends(t, env, 9003, true)
	d := env.NewDriver(t)
	apply(t, d, l4.State{Services: []l4.Service{svc(env, port, l4.UDP, l4.RR, dsts)}})
	vip := netip.AddrPortFrom(env.VIP, port)
	seen := map[string]int{}
	for i := range 12 {
		// A new source port per query: each is a new flow to schedule.
		err := env.inClient(func() error {
			var last error
			for range 10 {
				c, err := net.DialUDP("udp", &net.UDPAddr{IP: env.Clients[i%len(env.Clients)].AsSlice()}, net.UDPAddrFromAddrPort(vip))
				if err != nil {
					return err
				}
				c.SetDeadline(time.Now().Add(500 * time.Millisecond))
				c.Write([]byte("hi"))
				buf := make([]byte, 64)
				n, err := c.Read(buf)
				c.Close()
				if err == nil {
					seen[string(buf[:n])]++
					return nil
				}
				last = err
			}
			return last
		})
		if err != nil {
			t.Fatalf("udp query %d: %v", i, err)
		}
	}
	if len(seen) < 2 {
		t.Fatalf("udp flows all went to one backend: %v", seen)
	}
}
