package provisioner_test

import (
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/provisioner"
	"github.com/elbcloud/elb/services/provisioner/compute/local"
	"github.com/elbcloud/elb/services/provisioner/compute/openstack/fakenova"
	"github.com/elbcloud/elb/services/provisioner/domain"
	"github.com/elbcloud/elb/services/provisioner/internal/testagent"
)

func TestARestartedProvisionerResumesWithoutBuildingASecondVM(t *testing.T) {
	e := newEnv(t, false)
	nova := fakenova.New()
	defer nova.Close()
	nova.NeverActive(true) // servers stay in BUILD until we let them boot
	if err := testagent.InProcess(e.ctx, e.bus.JS, func(events.NodeConfig) bool { return true }); err != nil {
		t.Fatal(err)
	}
	e.allocator()
	prov := e.provisioner(novaDriver(t, nova), nil)
	lb := "lb-resume"
	e.appendLB(lb, append([]any{request(events.LoadBalancerSpec{L7Nodes: 2}, time.Minute)}, httpTree(lb, 80)...)...)
	testkit.Eventually(t, 20*time.Second, func() bool { return nova.Creates() == 2 }, "both servers requested from nova")
	prov.stop(t) // killed while the servers boot
	nova.NeverActive(false)
	nova.Boot()
	e.provisioner(novaDriver(t, nova), nil)
	ev := e.waitStatus(lb, 30*time.Second, "ACTIVE", "ERROR")
	if _, ok := ev.Data.(*events.ELBActive); !ok {
		t.Fatalf("ended in %s: %+v", ev.Type, ev.Data)
	}
	if nova.Creates() != 2 || len(nova.Live()) != 2 {
		t.Fatalf("nova creates = %d, live = %v; want 2 and 2", nova.Creates(), nova.Live())
	}
	if got := countType(e.history(lb), events.TypeVMRequested); got != 2 {
		t.Fatalf("VMRequested appended %d times", got)
	}
}

func TestWarmPoolHandsOutBootedNodesAndRefills(t *testing.T) {
	e := newEnv(t, false)
	d := e.localDriver(shellAgent, "", local.ReadyProcess, t.TempDir())
	if err := testagent.InProcess(e.ctx, e.bus.JS, func(events.NodeConfig) bool { return true }); err != nil {
		t.Fatal(err)
	}
	e.allocator()
	e.provisioner(d, func(c *provisioner.Config) { c.WarmPool = 2 })
	testkit.Eventually(t, 20*time.Second, func() bool {
		evs, _, err := e.store.Load(e.ctx, events.AggNode, domain.WarmPoolID)
		if err != nil {
			t.Fatal(err)
		}
		p := domain.NewWarmPool()
		for _, ev := range evs {
			p.Apply(ev)
		}
		ready := 0
		for _, n := range p.Nodes() {
			if n.Status == domain.NodeReady && n.ClaimedBy == "" {
				ready++
			}
		}
		return ready == 2
	}, "two warm nodes booted")
	lb := "lb-warm"
	e.appendLB(lb, append([]any{request(events.LoadBalancerSpec{}, time.Minute)}, httpTree(lb, 80)...)...)
	ev := e.waitStatus(lb, 20*time.Second, "ACTIVE", "ERROR")
	a, ok := ev.Data.(*events.ELBActive)
	if !ok || len(a.Nodes) != 1 || a.Nodes[0][:3] != "wp-" {
		t.Fatalf("ended with %s %+v, want a warm node", ev.Type, ev.Data)
	}
	// The pool refills to two idle nodes next to the claimed one.
	testkit.Eventually(t, 20*time.Second, func() bool { nodes, _ := d.List(e.ctx); return len(nodes) == 3 }, "pool refilled")
	e.appendLB(lb, &events.ELBDeleteRequested{Deadline: time.Now().Add(time.Minute)})
	e.waitStatus(lb, 20*time.Second, "DELETED")
	nodes, _ := d.List(e.ctx)
	for _, n := range nodes {
		if n.ID == a.Nodes[0] {
			t.Fatalf("claimed warm node %s survived the delete", n.ID)
		}
	}
}
