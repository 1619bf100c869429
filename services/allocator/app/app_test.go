package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/allocator/app"
	"github.com/elbcloud/elb/services/allocator/domain"
)

func setup(t *testing.T, pools []domain.PoolSpec, pairs ...domain.Pair) (*app.Service, *eventstore.Store, context.Context) {
	t.Helper()
	bus := testkit.NATS(t)
	ctx := testkit.Context(t, time.Minute)
	store, err := eventstore.New(ctx, bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := app.New(store, pools, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs {
		if err := svc.RegisterPair(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	return svc, store, ctx
}

func requestEnv(t *testing.T, ctx context.Context, store *eventstore.Store, id string, spec events.LoadBalancerSpec) events.Envelope {
	t.Helper()
	env := events.MustNew(events.AggLoadBalancer, id, &events.ELBRequested{Spec: spec}, events.Meta{Actor: "test"})
	if _, err := store.Append(ctx, events.AggLoadBalancer, id, 0, "", env); err != nil {
		t.Fatal(err)
	}
	evs, _, _ := store.Load(ctx, events.AggLoadBalancer, id)
	return evs[0].Envelope
}

func outcome(t *testing.T, ctx context.Context, store *eventstore.Store, id string) string {
	t.Helper()
	evs, _, _ := store.Load(ctx, events.AggLoadBalancer, id)
	for _, e := range evs {
		switch d := e.Data.(type) {
		case *events.VIPAllocated:
			return d.Pool + "/" + d.Address + "@" + d.LVSPair
		case *events.AllocationFailed:
			return "failed: " + d.Reason
		}
	}
	return ""
}

func TestABatchHonoursZonesRequestedAddressesAndConflictsWithinItself(t *testing.T) {
	pools := []domain.PoolSpec{
		{Name: "az1", CIDRs: []string{"10.1.0.0/29"}, AvailabilityZone: "az1"},
		{Name: "az2", CIDRs: []string{"10.2.0.0/29"}, AvailabilityZone: "az2"},
	}
	svc, store, ctx := setup(t, pools, domain.Pair{Name: "p1", Nodes: []string{"l1"}, AvailabilityZone: "az1"}, domain.Pair{Name: "p2", Nodes: []string{"l2"}, AvailabilityZone: "az2"})
	reqs := []events.Envelope{
		requestEnv(t, ctx, store, "a", events.LoadBalancerSpec{AvailabilityZone: "az2"}),
		requestEnv(t, ctx, store, "b", events.LoadBalancerSpec{VIPAddress: "10.1.0.5"}),
		requestEnv(t, ctx, store, "c", events.LoadBalancerSpec{VIPAddress: "10.1.0.5"}),
		requestEnv(t, ctx, store, "d", events.LoadBalancerSpec{AvailabilityZone: "az1", VIPAddress: "10.2.0.3"}),
		requestEnv(t, ctx, store, "e", events.LoadBalancerSpec{AvailabilityZone: "az3"}),
	}
	errs := svc.AllocateBatch(ctx, reqs)
	for id, err := range errs {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	want := map[string]string{
		"a": "az2/10.2.0.1@p2",
		"b": "az1/10.1.0.5@p1",
		"c": "failed: 10.1.0.5: vip address in use",
		"d": "failed: 10.2.0.3 belongs to zone",
		"e": "failed: zone \"az3\": no lvs pair available",
	}
	for id, w := range want {
		if got := outcome(t, ctx, store, id); !strings.HasPrefix(got, w) {
			t.Errorf("%s: %q, want prefix %q", id, got, w)
		}
	}
	// Redelivered: nothing changes, no second allocation.
	svc.AllocateBatch(ctx, reqs)
	pool, _, _ := store.Load(ctx, events.AggVIPPool, "az1")
	if len(pool) != 1 {
		t.Fatalf("az1 has %d events after a redelivery, want 1", len(pool))
	}
}

func TestAnExhaustedPoolFailsTheRequestWithTheReason(t *testing.T) {
	svc, store, ctx := setup(t, []domain.PoolSpec{{Name: "tiny", CIDRs: []string{"10.9.0.0/30"}}}, domain.Pair{Name: "p", Nodes: []string{"l"}})
	var reqs []events.Envelope
	for i := range 3 {
		reqs = append(reqs, requestEnv(t, ctx, store, fmt.Sprintf("lb%d", i), events.LoadBalancerSpec{}))
	}
	svc.AllocateBatch(ctx, reqs)
	if got := outcome(t, ctx, store, "lb2"); !strings.Contains(got, domain.ErrVIPPoolExhausted.Error()) {
		t.Fatalf("third request: %q", got)
	}
	if _, err := app.New(store, []domain.PoolSpec{{Name: "x", CIDRs: []string{"10.0.0.0/24"}}, {Name: "x", CIDRs: []string{"10.1.0.0/24"}}}, nil); !errors.Is(err, domain.ErrInvalidPool) {
		t.Fatalf("duplicate pool names: %v", err)
	}
}
