package domain

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/elbcloud/elb/events"
)

func apply(p *Pool, version uint64, data any) {
	p.Apply(events.Event{Envelope: events.Envelope{AggregateVersion: version}, Data: data})
}

func TestPoolHandsOutLowestFreeAddressAndSkipsReserved(t *testing.T) {
	p, err := NewPool(PoolSpec{Name: "p", CIDRs: []string{"10.0.0.0/30"}, Reserved: []string{"10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := p.Allocate("lb1", netip.Addr{}, Pair{Name: "a"})
	if err != nil || ev.Address != "10.0.0.2" {
		t.Fatalf("first allocation = %+v, %v; want 10.0.0.2", ev, err)
	}
	apply(p, 1, &ev)
	if _, err := p.Allocate("lb2", netip.Addr{}, Pair{Name: "a"}); !errors.Is(err, ErrVIPPoolExhausted) {
		t.Fatalf("second allocation error = %v, want exhausted (.0 .3 are network/broadcast, .1 reserved)", err)
	}
	rel, ok := p.Release("lb1")
	if !ok {
		t.Fatal("release found nothing")
	}
	apply(p, 2, &rel)
	if ev, err := p.Allocate("lb2", netip.Addr{}, Pair{Name: "a"}); err != nil || ev.Address != "10.0.0.2" {
		t.Fatalf("after release = %+v, %v", ev, err)
	}
}

func TestPoolHonoursRequestedAddressOnlyWhenFreeAndInside(t *testing.T) {
	p, _ := NewPool(DefaultPools()[0])
	ev, err := p.Allocate("lb1", netip.MustParseAddr("127.100.0.9"), Pair{Name: "local"})
	if err != nil || ev.Address != "127.100.0.9" {
		t.Fatalf("requested = %+v, %v", ev, err)
	}
	apply(p, 1, &ev)
	cases := []struct {
		addr string
		want error
	}{
		{"127.100.0.9", ErrAddressInUse},
		{"127.100.0.255", ErrAddressNotInPool},
		{"10.1.1.1", ErrAddressNotInPool},
	}
	for _, c := range cases {
		if _, err := p.Allocate("lb2", netip.MustParseAddr(c.addr), Pair{}); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.addr, err, c.want)
		}
	}
}

func TestInvalidPoolConfigIsRejected(t *testing.T) {
	for _, spec := range []PoolSpec{{Name: "", CIDRs: []string{"10.0.0.0/24"}}, {Name: "x"}, {Name: "x", CIDRs: []string{"nope"}}, {Name: "x", CIDRs: []string{"10.0.0.0/24"}, Reserved: []string{"bad"}}} {
		if _, err := NewPool(spec); !errors.Is(err, ErrInvalidPool) {
			t.Errorf("%+v: err = %v", spec, err)
		}
	}
}

func TestChoosePairPicksLeastLoadedWithinZoneAndCapacity(t *testing.T) {
	pairs := []Pair{{Name: "a", Nodes: []string{"x"}, Capacity: 2}, {Name: "b", Nodes: []string{"y"}}, {Name: "c", Nodes: []string{"z"}, AvailabilityZone: "az2"}}
	got, err := ChoosePair(pairs, map[string]int{"a": 0, "b": 1}, "az1")
	if err != nil || got.Name != "a" {
		t.Fatalf("got %v %v, want a", got.Name, err)
	}
	got, _ = ChoosePair(pairs, map[string]int{"a": 2, "b": 5}, "")
	if got.Name != "c" {
		t.Fatalf("got %v, want c (a is full, c least loaded)", got.Name)
	}
	if _, err := ChoosePair(nil, nil, ""); !errors.Is(err, ErrNoLVSPair) {
		t.Fatalf("err = %v", err)
	}
}
