package provisioner_test

import (
	"strings"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/provisioner"
	"github.com/elbcloud/elb/services/provisioner/compute/local"
	"github.com/elbcloud/elb/services/provisioner/compute/openstack"
	"github.com/elbcloud/elb/services/provisioner/compute/openstack/fakenova"
	"github.com/gophercloud/gophercloud/v2"
)

func novaDriver(t *testing.T, nova *fakenova.Server) *openstack.Driver {
	t.Helper()
	d, err := openstack.New(openstack.Config{
		Auth:   gophercloud.AuthOptions{IdentityEndpoint: nova.IdentityEndpoint(), Username: "elb", Password: "secret", DomainName: "Default", TenantName: "elb"},
		Flavor: "m1.small", Image: "tengine", Network: "net-1", NATSURL: "nats://127.0.0.1:4222", AgentSecret: agentSecret, PollInterval: 20 * time.Millisecond,
		Logger: logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func failedOf(t *testing.T, ev events.Event) *events.ELBFailed {
	t.Helper()
	f, ok := ev.Data.(*events.ELBFailed)
	if !ok {
		t.Fatalf("ended in %s, want ELBFailed", ev.Type)
	}
	return f
}

func countType(evs []events.Event, typ string) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func TestSecondVMFailingRollsBackTheFirstAndReleasesTheVIP(t *testing.T) {
	e := newEnv(t, false)
	nova := fakenova.New()
	defer nova.Close()
	nova.FailCreate(2)
	e.lvsAgent()
	e.allocator()
	e.provisioner(novaDriver(t, nova), nil)

	lb := "lb-novafail"
	e.appendLB(lb, append([]any{request(events.LoadBalancerSpec{Name: "x", L7Nodes: 2}, time.Minute)}, httpTree(lb, 80)...)...)
	f := failedOf(t, e.waitStatus(lb, 30*time.Second, "ACTIVE", "ERROR"))
	if f.Step != "create_vm" || !strings.Contains(f.Reason, "No valid host") {
		t.Fatalf("failure = %q at %q", f.Reason, f.Step)
	}
	if len(f.Log) < 3 || !strings.Contains(f.Log[len(f.Log)-1].Message, "rolled back") {
		t.Fatalf("step log = %+v", f.Log)
	}
	if live := nova.Live(); len(live) != 0 {
		t.Fatalf("servers left in nova: %v", live)
	}
	if nova.Creates() != 2 {
		t.Fatalf("nova saw %d creates, want 2", nova.Creates())
	}
	evs := e.history(lb)
	if countType(evs, events.TypeVMDeleted) != 2 {
		t.Fatalf("want both nodes deleted in the log")
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return len(e.vipHolders()) == 0 }, "vip released")
	if lvs, _ := e.desired(lvsNode); len(lvs.LoadBalancers) != 0 {
		t.Fatalf("lvs config not withdrawn: %+v", lvs.LoadBalancers)
	}
}

func TestANodeThatNeverBootsFailsAtItsDeadline(t *testing.T) {
	e := newEnv(t, false)
	nova := fakenova.New()
	defer nova.Close()
	nova.NeverActive(true)
	e.allocator()
	e.provisioner(novaDriver(t, nova), func(c *provisioner.Config) { c.Deadlines.VMReady = time.Second })
	lb := "lb-slow"
	e.appendLB(lb, request(events.LoadBalancerSpec{}, time.Minute))
	f := failedOf(t, e.waitStatus(lb, 20*time.Second, "ACTIVE", "ERROR"))
	if f.Step != "create_vm" || !strings.Contains(f.Reason, "not ready") && !strings.Contains(f.Reason, "deadline") {
		t.Fatalf("failure = %q at %q", f.Reason, f.Step)
	}
	if live := nova.Live(); len(live) != 0 {
		t.Fatalf("servers left: %v", live)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return len(e.vipHolders()) == 0 }, "vip released")
}

func TestConfigNeverAppliedFailsTheCreateAndDeletesTheNodes(t *testing.T) {
	e := newEnv(t, false)
	d := e.localDriver([]string{"/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done", "{{.NodeID}}"}, "", local.ReadyProcess, t.TempDir())
	// No agent answers: nobody reports the config applied.
	e.allocator()
	e.provisioner(d, func(c *provisioner.Config) { c.Deadlines.ConfigApplied = time.Second })
	lb := "lb-silent"
	e.appendLB(lb, append([]any{request(events.LoadBalancerSpec{}, time.Minute)}, httpTree(lb, 80)...)...)
	f := failedOf(t, e.waitStatus(lb, 20*time.Second, "ACTIVE", "ERROR"))
	if f.Step != "apply_config" || !strings.Contains(f.Reason, "not applied") {
		t.Fatalf("failure = %q at %q", f.Reason, f.Step)
	}
	if nodes, _ := d.List(e.ctx); len(nodes) != 0 {
		t.Fatalf("nodes left: %+v", nodes)
	}
}

func TestAnUnavailableVIPFailsTheCreate(t *testing.T) {
	e := newEnv(t, false)
	e.allocator()
	nova := fakenova.New()
	defer nova.Close()
	e.provisioner(novaDriver(t, nova), nil)
	lb := "lb-novip"
	e.appendLB(lb, request(events.LoadBalancerSpec{VIPAddress: "192.0.2.1"}, time.Minute))
	f := failedOf(t, e.waitStatus(lb, 20*time.Second, "ACTIVE", "ERROR"))
	if f.Step != "allocate_vip" || !strings.Contains(f.Reason, "not in any pool") {
		t.Fatalf("failure = %q at %q", f.Reason, f.Step)
	}
	if nova.Creates() != 0 {
		t.Fatal("a VM was built for a load balancer without a VIP")
	}
}

func TestAFailedUpdateKeepsTheLoadBalancerServingAndANewUpdateRecovers(t *testing.T) {
	e := newEnv(t, false)
	d := e.localDriver([]string{"/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done", "{{.NodeID}}"}, "", local.ReadyProcess, t.TempDir())
	// The in-process agent rejects configs with a listener on port 666.
	if err := testkitAgentRejecting(e, 666); err != nil {
		t.Fatal(err)
	}
	e.allocator()
	e.provisioner(d, func(c *provisioner.Config) { c.Deadlines.ConfigApplied = 1500 * time.Millisecond })
	lb := "lb-upd"
	e.appendLB(lb, append([]any{request(events.LoadBalancerSpec{}, time.Minute)}, httpTree(lb, 80)...)...)
	e.waitStatus(lb, 20*time.Second, "ACTIVE")
	e.appendLB(lb, &events.ListenerCreated{ListenerID: "bad", Spec: events.ListenerSpec{LoadBalancerID: lb, Protocol: "HTTP", ProtocolPort: 666, AdminStateUp: true}})
	f := failedOf(t, e.waitStatus(lb, 20*time.Second, "ERROR"))
	if f.Step != "apply_config" || !strings.Contains(f.Reason, "rejected port 666") {
		t.Fatalf("failure = %q at %q", f.Reason, f.Step)
	}
	if nodes, _ := d.List(e.ctx); len(nodes) != 1 {
		t.Fatalf("a failed update must keep the node: %+v", nodes)
	}
	if len(e.vipHolders()) != 1 {
		t.Fatal("a failed update must keep the VIP")
	}
	e.appendLB(lb, &events.ListenerDeleted{ListenerID: "bad"})
	e.waitStatus(lb, 20*time.Second, "ACTIVE")
}
