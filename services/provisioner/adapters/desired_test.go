package adapters_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/provisioner/adapters"
	"github.com/elbcloud/elb/services/provisioner/domain"
)

func TestConcurrentSharedUpdatesAllLandAndVersionsOnlyGrow(t *testing.T) {
	bus := testkit.NATS(t)
	ctx := testkit.Context(t, time.Minute)
	d, err := adapters.NewDesired(ctx, bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	versions := make([]uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entry := events.LBConfig{ID: fmt.Sprintf("lb-%02d", i), VIP: fmt.Sprintf("127.100.0.%d", i+1), Listeners: []events.ListenerConfig{}}
			update := d.Update
			if i%2 == 0 {
				update = d.UpdateShared
			}
			v, err := update(ctx, "lvs-1", events.RoleLVS, func(c *events.NodeConfig) bool {
				c.LoadBalancers = domain.ReplaceLB(c.LoadBalancers, entry, false)
				return true
			})
			if err != nil {
				t.Error(err)
			}
			versions[i] = v
		}()
	}
	wg.Wait()
	cfg, ok, err := d.Get(ctx, "lvs-1")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if len(cfg.LoadBalancers) != n {
		t.Fatalf("config holds %d load balancers, want %d", len(cfg.LoadBalancers), n)
	}
	for i, v := range versions {
		if v == 0 || v > cfg.Version {
			t.Fatalf("writer %d got version %d, final %d", i, v, cfg.Version)
		}
	}
	// A bad change fails alone.
	bad := events.LBConfig{ID: "bad", VIP: "not-an-ip"}
	var badErr, goodErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, badErr = d.UpdateShared(ctx, "lvs-1", events.RoleLVS, func(c *events.NodeConfig) bool {
			c.LoadBalancers = domain.ReplaceLB(c.LoadBalancers, bad, false)
			return true
		})
	}()
	go func() {
		defer wg.Done()
		_, goodErr = d.UpdateShared(ctx, "lvs-1", events.RoleLVS, func(c *events.NodeConfig) bool {
			c.LoadBalancers = domain.ReplaceLB(c.LoadBalancers, events.LBConfig{ID: "good", VIP: "127.100.0.99", Listeners: []events.ListenerConfig{}}, false)
			return true
		})
	}()
	wg.Wait()
	if badErr == nil || goodErr != nil {
		t.Fatalf("bad change err = %v, good change err = %v", badErr, goodErr)
	}
	if err := d.Delete(ctx, "lvs-1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "never-there"); err != nil {
		t.Fatal(err)
	}
}
