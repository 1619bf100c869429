package provisioner_test

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/provisioner/compute/local"
	"github.com/elbcloud/elb/services/provisioner/internal/testagent"
)

// shellAgent is a node process that only idles until SIGTERM; the
// in-process test agent answers for it on the bus.
var shellAgent = []string{"/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done", "{{.NodeID}}"}

func TestFiftyCreatesSurviveProvisionerAndAllocatorRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test is long")
	}
	e := newEnv(t, false)
	dir := t.TempDir()
	if err := testagent.InProcess(e.ctx, e.bus.JS, func(events.NodeConfig) bool { return true }); err != nil {
		t.Fatal(err)
	}
	driver := func() *local.Driver { return e.localDriver(shellAgent, "", local.ReadyProcess, dir) }
	alloc := e.allocator()
	prov := e.provisioner(driver(), nil)

	start := time.Now()
	const n = 50
	deadline := 90 * time.Second
	ids := make([]string, n)
	deadlines := map[string]time.Time{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		ids[i] = fmt.Sprintf("lb-chaos-%02d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := request(events.LoadBalancerSpec{Name: ids[i]}, deadline)
			mu.Lock()
			deadlines[ids[i]] = req.Deadline
			mu.Unlock()
			e.appendLB(ids[i], append([]any{req}, httpTree(ids[i], 8000+i)...)...)
		}()
	}
	// Kill and restart each service twice while the creates run.
	for round := range 2 {
		time.Sleep(300 * time.Millisecond)
		prov.stop(t)
		prov = e.provisioner(driver(), nil)
		time.Sleep(200 * time.Millisecond)
		alloc.stop(t)
		alloc = e.allocator()
		t.Logf("round %d: both services restarted after %s", round+1, time.Since(start))
	}
	wg.Wait()

	final := map[string]events.Event{}
	testkit.Eventually(t, 2*deadline, func() bool {
		for _, id := range ids {
			if _, done := final[id]; done {
				continue
			}
			st, ev := e.status(id)
			if st == "ACTIVE" || st == "ERROR" {
				final[id] = ev
			}
		}
		return len(final) == n
	}, "every load balancer ends ACTIVE or ERROR (%d of %d did)", len(final), n)
	t.Logf("all ended after %s", time.Since(start))

	activeVIPs := map[string]string{}
	var liveNodes []string
	errs := 0
	for _, id := range ids {
		ev := final[id]
		if late := ev.OccurredAt.Sub(deadlines[id]); late > 10*time.Second {
			t.Errorf("%s ended %s after its deadline", id, late)
		}
		switch d := ev.Data.(type) {
		case *events.ELBActive:
			if other, dup := activeVIPs[d.VIP]; dup {
				t.Errorf("vip %s on %s and %s", d.VIP, other, id)
			}
			activeVIPs[d.VIP] = id
			liveNodes = append(liveNodes, d.Nodes...)
			if len(d.Nodes) != 1 {
				t.Errorf("%s has nodes %v, want 1", id, d.Nodes)
			}
		case *events.ELBFailed:
			errs++
			t.Logf("%s failed at %s: %s", id, d.Step, d.Reason)
		}
	}
	t.Logf("%d ACTIVE, %d ERROR", len(activeVIPs), errs)
	// The pool agrees: exactly the ACTIVE load balancers hold a VIP.
	testkit.Eventually(t, 20*time.Second, func() bool {
		held := e.vipHolders()
		if len(held) != len(activeVIPs) {
			return false
		}
		for vip, lb := range activeVIPs {
			if held[vip] != lb {
				return false
			}
		}
		return true
	}, "pool holds exactly the VIPs of ACTIVE load balancers")
	// No orphan: the machine runs exactly the ACTIVE load balancers' nodes.
	d := driver()
	var running []string
	testkit.Eventually(t, 20*time.Second, func() bool {
		nodes, err := d.List(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		running = running[:0]
		for _, nd := range nodes {
			if nd.Ready {
				running = append(running, nd.ID)
			}
		}
		sort.Strings(running)
		sort.Strings(liveNodes)
		return slices.Equal(running, liveNodes) && len(nodes) == len(running)
	}, "running nodes %v == nodes of ACTIVE load balancers %v", running, liveNodes)
}
