package readmodel_test

import (
	"testing"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/apigw/readmodel"
)

type feeder struct {
	m   *readmodel.Model
	seq uint64
}

func (f *feeder) add(aggType, aggID string, d any) {
	f.seq++
	env := events.MustNew(aggType, aggID, d, events.Meta{ProjectID: "p1"})
	env.Sequence = f.seq
	_ = f.m.Apply(events.Event{Envelope: env, Data: d})
}

func TestModelFollowsATreeThroughItsLife(t *testing.T) {
	f := &feeder{m: readmodel.New()}
	lb := "lb1"
	f.add(events.AggLoadBalancer, lb, &events.ELBRequested{Spec: events.LoadBalancerSpec{Name: "x", AdminStateUp: true}})
	if v, _ := f.m.LoadBalancer(lb); v.ProvisioningStatus != "PENDING_CREATE" || v.OperatingStatus != "OFFLINE" {
		t.Fatalf("requested: %+v", v)
	}
	f.add(events.AggVIPPool, "pool-a", &events.VIPAllocated{LoadBalancerID: lb, Address: "198.51.100.7"})
	f.add(events.AggNode, "n1", &events.VMReady{LoadBalancerID: lb, NodeID: "n1", Address: "127.0.1.1"})
	f.add(events.AggLoadBalancer, lb, &events.ELBActive{Nodes: []string{"n1"}})
	v, _ := f.m.LoadBalancer(lb)
	if v.ProvisioningStatus != "ACTIVE" || v.VIPAddress != "198.51.100.7" || len(v.Nodes) != 1 || v.Nodes[0].Address != "127.0.1.1" {
		t.Fatalf("active: %+v", v)
	}
	f.add(events.AggLoadBalancer, lb, &events.ListenerCreated{ListenerID: "l1", Spec: events.ListenerSpec{Protocol: "TCP", ProtocolPort: 80, AdminStateUp: true}})
	f.add(events.AggLoadBalancer, lb, &events.PoolCreated{PoolID: "p1", Spec: events.PoolSpec{ListenerID: "l1", Protocol: "TCP", LBAlgorithm: "ROUND_ROBIN", AdminStateUp: true}})
	f.add(events.AggLoadBalancer, lb, &events.MemberAdded{MemberID: "m1", Spec: events.MemberSpec{PoolID: "p1", Address: "10.0.0.1", ProtocolPort: 80, AdminStateUp: true}})
	f.add(events.AggLoadBalancer, lb, &events.MemberAdded{MemberID: "m2", Spec: events.MemberSpec{PoolID: "p1", Address: "10.0.0.2", ProtocolPort: 80, AdminStateUp: true}})
	if m, _ := f.m.Member("m1"); m.ProvisioningStatus != "PENDING_CREATE" {
		t.Fatalf("member before ELBActive: %+v", m)
	}
	if v, _ := f.m.LoadBalancer(lb); v.ProvisioningStatus != "PENDING_UPDATE" {
		t.Fatalf("lb during change: %s", v.ProvisioningStatus)
	}
	f.add(events.AggLoadBalancer, lb, &events.ELBActive{})
	if l, _ := f.m.Listener("l1"); l.DefaultPoolID == nil || *l.DefaultPoolID != "p1" || l.ProvisioningStatus != "ACTIVE" {
		t.Fatalf("listener: %+v", l)
	}
	if m, _ := f.m.Member("m1"); m.OperatingStatus != "NO_MONITOR" {
		t.Fatalf("member without monitor: %s", m.OperatingStatus)
	}
	f.add(events.AggNode, "n1", &events.RealServerUnhealthy{LoadBalancerID: lb, Address: "10.0.0.1", Port: 80})
	if p, _ := f.m.Pool("p1"); p.OperatingStatus != "DEGRADED" {
		t.Fatalf("pool with one member down: %s", p.OperatingStatus)
	}
	f.add(events.AggNode, "n1", &events.RealServerUnhealthy{LoadBalancerID: lb, MemberID: "m2"})
	if p, _ := f.m.Pool("p1"); p.OperatingStatus != "ERROR" {
		t.Fatalf("pool with all members down: %s", p.OperatingStatus)
	}
	f.add(events.AggNode, "n1", &events.RealServerHealthy{LoadBalancerID: lb, MemberID: "m2"})
	f.add(events.AggNode, "n1", &events.RealServerHealthy{LoadBalancerID: lb, Address: "10.0.0.1", Port: 80})
	if v, _ := f.m.LoadBalancer(lb); v.OperatingStatus != "ONLINE" {
		t.Fatalf("lb after recovery: %s", v.OperatingStatus)
	}
	if n := f.m.Count("p1", readmodel.KindMember); n != 2 {
		t.Fatalf("member count %d", n)
	}
	// A failed update leaves ERROR with the log; children that were pending too.
	f.add(events.AggLoadBalancer, lb, &events.MemberRemoved{MemberID: "m2", PoolID: "p1"})
	f.add(events.AggLoadBalancer, lb, &events.ELBFailed{Reason: "agent timeout", Step: "ConfigApplied"})
	if v, _ := f.m.LoadBalancer(lb); v.ProvisioningStatus != "ERROR" || v.ProvisioningLog == nil || v.ProvisioningLog.Reason != "agent timeout" || v.OperatingStatus != "ONLINE" {
		t.Fatalf("failed update: %+v", v)
	}
	// Deleting the pool removes its members; deleting the load balancer everything.
	f.add(events.AggLoadBalancer, lb, &events.PoolDeleted{PoolID: "p1"})
	if _, ok := f.m.Member("m1"); ok || f.m.Count("p1", readmodel.KindMember) != 0 {
		t.Fatal("member survived its pool")
	}
	f.add(events.AggLoadBalancer, lb, &events.ELBDeleteRequested{Cascade: true})
	f.add(events.AggLoadBalancer, lb, &events.ELBDeleted{})
	if _, ok := f.m.LoadBalancer(lb); ok {
		t.Fatal("deleted load balancer still visible")
	}
	if _, ok := f.m.Listener("l1"); ok || f.m.Count("p1", readmodel.KindLoadBalancer) != 0 || f.m.Count("p1", readmodel.KindListener) != 0 {
		t.Fatal("children or counts survived the delete")
	}
	if all := f.m.LoadBalancers("p1", true); len(all) != 1 || all[0].ProvisioningStatus != "DELETED" {
		t.Fatalf("deleted listing: %+v", all)
	}
	f.add(events.AggQuota, "p1", &events.QuotaSet{Quotas: map[string]int{"pool": 3}})
	if q := f.m.Quota("p1"); q["pool"] != 3 {
		t.Fatalf("quota %v", q)
	}
	f.add(events.AggQuota, "p1", &events.QuotaReset{})
	if q := f.m.Quota("p1"); len(q) != 0 || len(f.m.QuotaProjects()) != 0 {
		t.Fatalf("quota after reset %v", q)
	}
}
