package projection_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/projection"
	"github.com/elbcloud/elb/platform/testkit"
)

func TestProjectorReplaysThenFollowsAndWaitSeesWrites(t *testing.T) {
	bus := testkit.NATS(t)
	ctx := testkit.Context(t, 20*time.Second)
	st, err := eventstore.New(ctx, bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	add := func(id string) uint64 {
		e := events.MustNew(events.AggLoadBalancer, id, &events.ELBRequested{Spec: events.LoadBalancerSpec{Name: id}}, events.Meta{})
		r, err := st.Append(ctx, events.AggLoadBalancer, id, 0, "", e)
		if err != nil {
			t.Fatal(err)
		}
		return r.Sequence
	}
	add("old1")
	add("old2")
	var mu sync.Mutex
	names := map[string]bool{}
	p := projection.New(bus.JS, nil, func(e events.Event) error {
		mu.Lock()
		defer mu.Unlock()
		names[e.Data.(*events.ELBRequested).Spec.Name] = true
		return nil
	}, nil)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = p.Run(pctx) }()
	select {
	case <-p.CaughtUp():
	case <-ctx.Done():
		t.Fatal("never caught up")
	}
	seq := add("new")
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := p.Wait(wctx, seq); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) != 3 || !names["new"] {
		t.Fatalf("model = %v", names)
	}
}
