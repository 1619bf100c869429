package provisioner_test

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/provisioner"
	"github.com/elbcloud/elb/services/provisioner/compute/local"
	"github.com/elbcloud/elb/services/provisioner/internal/testagent"
)

func TestASilentNodeIsReplaced(t *testing.T) {
	e := newEnv(t, true)
	exe, _ := os.Executable()
	d := e.localDriver(testagent.Argv(exe), e.url, local.ReadyHeartbeat, t.TempDir())
	e.lvsAgent()
	e.allocator()
	e.provisioner(d, func(c *provisioner.Config) { c.NodeLostAfter = 1500 * time.Millisecond })
	lb := "lb-lost"
	e.appendLB(lb, append([]any{request(events.LoadBalancerSpec{L7Nodes: 2}, time.Minute)}, httpTree(lb, 8080)...)...)
	first, ok := e.waitStatus(lb, 30*time.Second, "ACTIVE", "ERROR").Data.(*events.ELBActive)
	if !ok {
		t.Fatal("create failed")
	}
	victim := first.Nodes[0]
	nodes, _ := d.List(e.ctx)
	for _, n := range nodes {
		if n.ID == victim {
			pid, _ := strconv.Atoi(strings.TrimPrefix(n.ServerID, "pid-"))
			p, _ := os.FindProcess(pid)
			if err := p.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	var again *events.ELBActive
	testkit.Eventually(t, 30*time.Second, func() bool {
		_, ev := e.status(lb)
		a, ok := ev.Data.(*events.ELBActive)
		if ok && a.Version > first.Version && !slices.Contains(a.Nodes, victim) && len(a.Nodes) == 2 {
			again = a
			return true
		}
		return false
	}, "a replacement node serves")
	if countType(e.history(lb), events.TypeNodeLost) != 1 {
		t.Fatal("want exactly one NodeLost")
	}
	testkit.Eventually(t, 20*time.Second, func() bool {
		nodes, _ := d.List(e.ctx)
		if len(nodes) != 2 {
			return false
		}
		for _, n := range nodes {
			if !slices.Contains(again.Nodes, n.ID) {
				return false
			}
		}
		return true
	}, "the lost node is deleted")
	lvs, _ := e.desired(lvsNode)
	for _, tg := range lvs.LoadBalancers[0].Listeners[0].L4Targets {
		if tg.ID == victim {
			t.Fatal("the lvs still sends traffic to the lost node")
		}
	}
}

func TestFailoverReplacesEveryNode(t *testing.T) {
	e := newEnv(t, false)
	d := e.localDriver(shellAgent, "", local.ReadyProcess, t.TempDir())
	if err := testagent.InProcess(e.ctx, e.bus.JS, func(events.NodeConfig) bool { return true }); err != nil {
		t.Fatal(err)
	}
	e.allocator()
	e.provisioner(d, nil)
	lb := "lb-failover"
	e.appendLB(lb, append([]any{request(events.LoadBalancerSpec{L7Nodes: 2}, time.Minute)}, httpTree(lb, 8080)...)...)
	first, ok := e.waitStatus(lb, 30*time.Second, "ACTIVE", "ERROR").Data.(*events.ELBActive)
	if !ok {
		t.Fatal("create failed")
	}
	e.appendLB(lb, &events.FailoverRequested{Deadline: time.Now().Add(time.Minute)})
	testkit.Eventually(t, 30*time.Second, func() bool {
		_, ev := e.status(lb)
		a, ok := ev.Data.(*events.ELBActive)
		if !ok || a.Version <= first.Version || len(a.Nodes) != 2 {
			return false
		}
		for _, n := range a.Nodes {
			if slices.Contains(first.Nodes, n) {
				return false
			}
		}
		nodes, _ := d.List(e.ctx)
		return len(nodes) == 2
	}, "two new nodes serve and the old ones are gone")
	if vip := first.VIP; len(e.vipHolders()) != 1 || e.vipHolders()[vip] != lb {
		t.Fatal("failover must keep the VIP")
	}
}
