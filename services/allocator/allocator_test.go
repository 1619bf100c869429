package allocator_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/allocator"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func lastOf[T any](t *testing.T, store *eventstore.Store, id string) (*T, []events.Event) {
	t.Helper()
	evs, _, err := store.Load(context.Background(), events.AggLoadBalancer, id)
	if err != nil {
		t.Fatal(err)
	}
	var out *T
	for _, e := range evs {
		if d, ok := e.Data.(*T); ok {
			out = d
		}
	}
	return out, evs
}

func request(t *testing.T, store *eventstore.Store, id string, spec events.LoadBalancerSpec) {
	t.Helper()
	env := events.MustNew(events.AggLoadBalancer, id, &events.ELBRequested{Spec: spec, Deadline: time.Now().Add(time.Minute)}, events.Meta{Actor: "test", CorrelationID: id})
	if _, err := store.Append(context.Background(), events.AggLoadBalancer, id, 0, "", env); err != nil {
		t.Fatal(err)
	}
}

func appendLB(t *testing.T, store *eventstore.Store, id string, data any) {
	t.Helper()
	for {
		_, v, err := store.Load(context.Background(), events.AggLoadBalancer, id)
		if err != nil {
			t.Fatal(err)
		}
		_, err = store.Append(context.Background(), events.AggLoadBalancer, id, v, "", events.MustNew(events.AggLoadBalancer, id, data, events.Meta{Actor: "test"}))
		if err == nil {
			return
		}
	}
}

func TestThreeReplicasNeverHandOutAVIPTwice(t *testing.T) {
	bus := testkit.NATS(t)
	ctx := testkit.Context(t, 2*time.Minute)
	store, err := eventstore.New(ctx, bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	pools := []allocator.PoolSpec{{Name: "small", CIDRs: []string{"127.100.1.0/27"}}, {Name: "big", CIDRs: []string{"127.100.2.0/24"}}}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every replica follows the whole log: they all race for every
			// request and the same addresses.
			err := allocator.Run(runCtx, allocator.Config{JS: bus.JS, Pools: pools,
				Pairs: []allocator.Pair{{Name: "p1", Nodes: []string{"lvs-1"}}, {Name: "p2", Nodes: []string{"lvs-2"}}}, Logger: quiet()})
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	const n = 60
	var reqWG sync.WaitGroup
	for i := range n {
		reqWG.Add(1)
		go func() {
			defer reqWG.Done()
			request(t, store, fmt.Sprintf("lb-%02d", i), events.LoadBalancerSpec{Name: "x"})
		}()
	}
	reqWG.Wait()
	seen := map[string]string{}
	pairs := map[string]int{}
	testkit.Eventually(t, 60*time.Second, func() bool {
		clear(seen)
		clear(pairs)
		for i := range n {
			id := fmt.Sprintf("lb-%02d", i)
			vip, _ := lastOf[events.VIPAllocated](t, store, id)
			if vip == nil {
				return false
			}
			if other, dup := seen[vip.Address]; dup {
				t.Fatalf("%s handed to %s and %s", vip.Address, other, id)
			}
			seen[vip.Address] = id
			pairs[vip.LVSPair]++
		}
		return true
	}, "every load balancer gets a VIP")
	if pairs["p1"] != n/2 || pairs["p2"] != n/2 {
		t.Errorf("placement not balanced: %v", pairs)
	}
	// The pool aggregates agree: exactly n allocations, each address once.
	total := 0
	for _, p := range []string{"small", "big"} {
		evs, _, _ := store.Load(ctx, events.AggVIPPool, p)
		addrs := map[string]bool{}
		for _, e := range evs {
			if d, ok := e.Data.(*events.VIPAllocated); ok {
				if addrs[d.Address] {
					t.Fatalf("pool %s allocated %s twice", p, d.Address)
				}
				addrs[d.Address] = true
				total++
			}
		}
	}
	if total != n {
		t.Fatalf("pool aggregates hold %d allocations, want %d", total, n)
	}
}

func TestVIPIsReleasedOnDeleteAndRolledBackCreateButKeptAfterFailedUpdate(t *testing.T) {
	bus := testkit.NATS(t)
	ctx := testkit.Context(t, time.Minute)
	store, _ := eventstore.New(ctx, bus.JS)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- allocator.Run(runCtx, allocator.Config{JS: bus.JS, Pairs: []allocator.Pair{{Name: "local", Nodes: []string{"lvs-local-1"}}}, Logger: quiet()})
	}()
	defer func() { stop(); <-done }()

	request(t, store, "req", events.LoadBalancerSpec{VIPAddress: "127.100.0.42"})
	request(t, store, "taken", events.LoadBalancerSpec{VIPAddress: "127.100.0.42"})
	request(t, store, "outside", events.LoadBalancerSpec{VIPAddress: "10.9.9.9"})
	request(t, store, "rolledback", events.LoadBalancerSpec{})
	request(t, store, "updatefailed", events.LoadBalancerSpec{})
	testkit.Eventually(t, 20*time.Second, func() bool {
		v, _ := lastOf[events.VIPAllocated](t, store, "req")
		f1, _ := lastOf[events.AllocationFailed](t, store, "taken")
		f2, _ := lastOf[events.AllocationFailed](t, store, "outside")
		a, _ := lastOf[events.VIPAllocated](t, store, "rolledback")
		b, _ := lastOf[events.VIPAllocated](t, store, "updatefailed")
		return v != nil && f1 != nil && f2 != nil && a != nil && b != nil
	}, "allocations decided")
	if v, _ := lastOf[events.VIPAllocated](t, store, "req"); v.Address != "127.100.0.42" || v.LVSPair != "local" {
		t.Fatalf("requested vip = %+v", v)
	}
	appendLB(t, store, "req", &events.ELBDeleted{})
	appendLB(t, store, "rolledback", &events.ELBFailed{Reason: "x", Step: "create_vm"})
	appendLB(t, store, "updatefailed", &events.ELBActive{Version: 1})
	appendLB(t, store, "updatefailed", &events.ELBFailed{Reason: "x", Step: "apply_config"})
	released := func(pool string) map[string]bool {
		evs, _, _ := store.Load(ctx, events.AggVIPPool, pool)
		out := map[string]bool{}
		for _, e := range evs {
			if d, ok := e.Data.(*events.VIPReleased); ok {
				out[d.LoadBalancerID] = true
			}
		}
		return out
	}
	testkit.Eventually(t, 20*time.Second, func() bool {
		r := released("local")
		return r["req"] && r["rolledback"]
	}, "vips of the deleted and the rolled-back load balancer released")
	// The released address is handed out again.
	request(t, store, "again", events.LoadBalancerSpec{VIPAddress: "127.100.0.42"})
	testkit.Eventually(t, 20*time.Second, func() bool {
		v, _ := lastOf[events.VIPAllocated](t, store, "again")
		return v != nil && v.Address == "127.100.0.42"
	}, "released address reused")
	if released("local")["updatefailed"] {
		t.Fatal("a load balancer whose update failed lost its VIP")
	}
}
