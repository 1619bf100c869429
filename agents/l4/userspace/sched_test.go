package userspace

import (
	"net/netip"
	"testing"

	"github.com/elbcloud/elb/agents/l4"
)

func testPool(sched string, persist uint32, weights ...int) (*pool, []*backend, *int64) {
	now := int64(1000)
	s := l4.Service{Scheduler: sched, Persistence: persist, VIP: netip.MustParseAddr("127.0.0.50")}
	backends := map[netip.AddrPort]*backend{}
	var order []*backend
	for i, w := range weights {
		ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)}), 80)
		b := &backend{ap: ap}
		backends[ap] = b
		order = append(order, b)
		s.Destinations = append(s.Destinations, l4.Destination{Addr: ap.Addr(), Port: 80, Weight: w})
	}
	return newPool(s, backends, func() int64 { return now }), order, &now
}

func client(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}) }

func TestLeastConnectionSchedulersPickTheIdlestBackend(t *testing.T) {
	for _, tc := range []struct {
		sched   string
		weights []int
		active  []int64
		want    int
	}{
		{l4.LC, []int{1, 1, 1}, []int64{3, 1, 2}, 1},
		{l4.WLC, []int{1, 4, 1}, []int64{1, 3, 2}, 1}, // 3/4 < 1/1
		{l4.SED, []int{1, 3, 1}, []int64{0, 1, 0}, 1}, // (1+1)/3 < (0+1)/1
		{l4.NQ, []int{1, 3, 1}, []int64{1, 1, 0}, 2},  // an idle server wins outright
	} {
		p, bs, _ := testPool(tc.sched, 0, tc.weights...)
		for i, a := range tc.active {
			bs[i].active.Store(a)
		}
		if got := p.pick(client(1), netip.Addr{}); got != bs[tc.want] {
			t.Errorf("%s weights %v active %v: picked %s, want backend %d", tc.sched, tc.weights, tc.active, got.ap, tc.want)
		}
	}
}

func TestDrainedBackendsAreNeverPicked(t *testing.T) {
	for _, sched := range l4.Schedulers {
		p, bs, _ := testPool(sched, 0, 1, 0, 1)
		for i := range 50 {
			if p.pick(client(i), netip.MustParseAddr("127.0.0.50")) == bs[1] {
				t.Fatalf("%s picked the weight-0 backend", sched)
			}
		}
	}
	p, _, _ := testPool(l4.RR, 0, 0, 0)
	if p.pick(client(1), netip.Addr{}) != nil {
		t.Fatal("a pool without positive weights picked a backend")
	}
}

func TestPersistenceKeepsAClientUntilItExpires(t *testing.T) {
	p, _, now := testPool(l4.RR, 60, 1, 1, 1)
	first := p.pick(client(1), netip.Addr{})
	for range 5 {
		if got := p.pick(client(1), netip.Addr{}); got != first {
			t.Fatalf("persistent client moved from %s to %s", first.ap, got.ap)
		}
		*now += 30 // each connection refreshes the entry
	}
	other := p.pick(client(2), netip.Addr{})
	if other == first {
		t.Fatalf("round robin gave a second client the same backend")
	}
	*now += 61
	// Expired: the client is scheduled afresh, i.e. by the round-robin cursor.
	want := p.members[(p.next+1)%len(p.members)].b
	if got := p.pick(client(1), netip.Addr{}); got != want {
		t.Fatalf("after expiry got %s, want the next in rotation %s", got.ap, want.ap)
	}
}

func TestWeightedRoundRobinInterleaves(t *testing.T) {
	p, bs, _ := testPool(l4.WRR, 0, 5, 1, 1)
	var seq []int
	for range 7 {
		b := p.pick(client(1), netip.Addr{})
		for i := range bs {
			if bs[i] == b {
				seq = append(seq, i)
			}
		}
	}
	count := map[int]int{}
	for _, i := range seq {
		count[i]++
	}
	if count[0] != 5 || count[1] != 1 || count[2] != 1 {
		t.Fatalf("wrr over 7 picks %v, want 5/1/1", seq)
	}
	if seq[0] == 0 && seq[1] == 0 && seq[2] == 0 && seq[3] == 0 && seq[4] == 0 {
		t.Fatalf("wrr sent a burst to the heaviest backend: %v", seq)
	}
}
