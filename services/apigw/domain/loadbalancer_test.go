package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/apigw/domain"
)

// history applies payloads as consecutive events of one aggregate.
func history(t *testing.T, payloads ...any) *domain.LoadBalancer {
	t.Helper()
	var evs []events.Event
	for i, p := range payloads {
		env := events.MustNew(events.AggLoadBalancer, "lb1", p, events.Meta{ProjectID: "p1"})
		env.AggregateVersion = uint64(i + 1)
		env.Sequence = uint64(10 + i)
		evs = append(evs, events.Event{Envelope: env, Data: p})
	}
	return domain.Rebuild("lb1", evs)
}

var (
	requested = &events.ELBRequested{Spec: events.LoadBalancerSpec{Name: "lb", AdminStateUp: true}}
	active    = &events.ELBActive{}
	tcp80     = events.ListenerSpec{Protocol: "TCP", ProtocolPort: 80, ConnectionLimit: -1, AdminStateUp: true}
	httpPool  = events.PoolSpec{Protocol: "HTTP", LBAlgorithm: "ROUND_ROBIN", AdminStateUp: true}
	tcpPool   = events.PoolSpec{Protocol: "TCP", LBAlgorithm: "ROUND_ROBIN", AdminStateUp: true}
)

func member(addr string, port int) events.MemberSpec {
	return events.MemberSpec{PoolID: "p1", Address: addr, ProtocolPort: port, Weight: 1, AdminStateUp: true}
}

func TestAggregateRebuildsItsStateFromEvents(t *testing.T) {
	lb := history(t, requested, active,
		&events.ListenerCreated{ListenerID: "l1", Spec: tcp80},
		&events.PoolCreated{PoolID: "p1", Spec: events.PoolSpec{ListenerID: "l1", Protocol: "TCP", LBAlgorithm: "ROUND_ROBIN"}},
		&events.MemberAdded{MemberID: "m1", Spec: member("10.0.0.1", 80)},
		active)
	if lb.Status() != domain.StatusActive || lb.Version() != 6 || lb.LastSequence() != 15 || lb.Project() != "p1" {
		t.Fatalf("status %s version %d seq %d project %s", lb.Status(), lb.Version(), lb.LastSequence(), lb.Project())
	}
	if l, _ := lb.Listener("l1"); l.DefaultPoolID != "p1" {
		t.Fatalf("pool created on a listener is its default pool: %+v", l)
	}
	lb = history(t, requested, active, &events.ListenerCreated{ListenerID: "l1", Spec: tcp80},
		&events.PoolCreated{PoolID: "p1", Spec: tcpPool}, &events.MemberAdded{MemberID: "m1", Spec: member("10.0.0.1", 80)},
		&events.PoolDeleted{PoolID: "p1"})
	if _, ok := lb.Member("m1"); ok || lb.Status() != domain.StatusPendingUpdate {
		t.Fatalf("pool delete keeps its member or status %s", lb.Status())
	}
}

func TestCommandsDecideOrRefuse(t *testing.T) {
	boundPool := tcpPool
	boundPool.ListenerID = "l1"
	base := []any{requested, active, &events.ListenerCreated{ListenerID: "l1", Spec: tcp80}, active,
		&events.PoolCreated{PoolID: "p1", Spec: boundPool}, active, &events.MemberAdded{MemberID: "m1", Spec: member("10.0.0.1", 80)}, active}
	cases := []struct {
		name    string
		history []any
		cmd     func(lb *domain.LoadBalancer) ([]any, error)
		want    error
		events  int
	}{
		{"a change while PENDING_CREATE is refused", []any{requested},
			func(lb *domain.LoadBalancer) ([]any, error) { return lb.CreateListener("l2", tcp80) }, domain.ErrImmutable, 0},
		{"a change while PENDING_UPDATE is refused", append(append([]any{}, base...), &events.MemberUpdated{MemberID: "m1", Spec: member("10.0.0.1", 80)}),
			func(lb *domain.LoadBalancer) ([]any, error) { return lb.DeleteMember("p1", "m1") }, domain.ErrImmutable, 0},
		{"a change on an ERROR load balancer is allowed", []any{requested, &events.ELBFailed{Reason: "x"}},
			func(lb *domain.LoadBalancer) ([]any, error) { return lb.CreateListener("l2", tcp80) }, nil, 1},
		{"a second listener on the same port conflicts", base,
			func(lb *domain.LoadBalancer) ([]any, error) { return lb.CreateListener("l2", tcp80) }, domain.ErrConflict, 0},
		{"UDP and TCP share a port number", base,
			func(lb *domain.LoadBalancer) ([]any, error) {
				s := tcp80
				s.Protocol = "UDP"
				return lb.CreateListener("l2", s)
			}, nil, 1},
		{"a pool on a listener that has a default pool conflicts", base,
			func(lb *domain.LoadBalancer) ([]any, error) {
				s := tcpPool
				s.ListenerID = "l1"
				return lb.CreatePool("p2", s)
			}, domain.ErrConflict, 0},
		{"an HTTP pool behind a UDP listener is invalid", append(append([]any{}, base...), &events.ListenerCreated{ListenerID: "u", Spec: events.ListenerSpec{Protocol: "UDP", ProtocolPort: 53, ConnectionLimit: -1}}, active),
			func(lb *domain.LoadBalancer) ([]any, error) {
				s := httpPool
				s.ListenerID = "u"
				return lb.CreatePool("p2", s)
			}, domain.ErrInvalid, 0},
		{"a duplicate member conflicts", base,
			func(lb *domain.LoadBalancer) ([]any, error) { return lb.CreateMember("m2", member("10.0.0.1", 80)) }, domain.ErrConflict, 0},
		{"a member of an unknown pool is not found", base,
			func(lb *domain.LoadBalancer) ([]any, error) {
				m := member("10.0.0.2", 80)
				m.PoolID = "nope"
				return lb.CreateMember("m2", m)
			}, domain.ErrNotFound, 0},
		{"delete without cascade refuses children", base,
			func(lb *domain.LoadBalancer) ([]any, error) { return lb.Delete(false, time.Now()) }, domain.ErrHasChildren, 0},
		{"cascade delete is accepted", base,
			func(lb *domain.LoadBalancer) ([]any, error) { return lb.Delete(true, time.Now()) }, nil, 1},
		{"a deleted load balancer is not found", append(append([]any{}, base...), &events.ELBDeleteRequested{}, &events.ELBDeleted{}),
			func(lb *domain.LoadBalancer) ([]any, error) { return lb.Failover(time.Now()) }, domain.ErrNotFound, 0},
		{"a monitor with timeout >= delay is invalid", base,
			func(lb *domain.LoadBalancer) ([]any, error) {
				return lb.CreateMonitor("h", events.HealthMonitorSpec{PoolID: "p1", Type: "TCP", Delay: 3, Timeout: 3, MaxRetries: 3, MaxRetriesDown: 3})
			}, domain.ErrInvalid, 0},
		{"a UDP-CONNECT monitor on a TCP pool is invalid", base,
			func(lb *domain.LoadBalancer) ([]any, error) {
				return lb.CreateMonitor("h", events.HealthMonitorSpec{PoolID: "p1", Type: "UDP-CONNECT", Delay: 5, Timeout: 3, MaxRetries: 3, MaxRetriesDown: 3})
			}, domain.ErrInvalid, 0},
		{"a pool used by an L7 redirect cannot be deleted", append(append([]any{}, base...),
			&events.L7PolicySet{L7PolicyID: "x", Spec: events.L7PolicySpec{ListenerID: "l1", Action: "REDIRECT_TO_POOL", RedirectPoolID: "p1"}}, active),
			func(lb *domain.LoadBalancer) ([]any, error) { return lb.DeletePool("p1") }, domain.ErrConflict, 0},
		{"a second request of the same id conflicts", base,
			func(lb *domain.LoadBalancer) ([]any, error) { return lb.Request(events.LoadBalancerSpec{}, time.Now()) }, domain.ErrConflict, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, err := c.cmd(history(t, c.history...))
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if len(evs) != c.events {
				t.Fatalf("%d events, want %d", len(evs), c.events)
			}
		})
	}
}

func TestBatchMembersAddsUpdatesAndRemovesByAddressAndPort(t *testing.T) {
	lb := history(t, requested, active, &events.PoolCreated{PoolID: "p1", Spec: tcpPool},
		&events.MemberAdded{MemberID: "keep", Spec: member("10.0.0.1", 80)},
		&events.MemberAdded{MemberID: "change", Spec: member("10.0.0.2", 80)},
		&events.MemberAdded{MemberID: "drop", Spec: member("10.0.0.3", 80)}, active)
	changed := member("10.0.0.2", 80)
	changed.Weight = 9
	n := 0
	evs, err := lb.BatchMembers("p1", []events.MemberSpec{member("10.0.0.1", 80), changed, member("10.0.0.4", 80)}, func() string { n++; return "new" })
	if err != nil {
		t.Fatal(err)
	}
	var added, updated, removed []string
	for _, e := range evs {
		switch d := e.(type) {
		case *events.MemberAdded:
			added = append(added, d.MemberID)
		case *events.MemberUpdated:
			updated = append(updated, d.MemberID)
		case *events.MemberRemoved:
			removed = append(removed, d.MemberID)
		}
	}
	if len(added) != 1 || len(updated) != 1 || updated[0] != "change" || len(removed) != 1 || removed[0] != "drop" {
		t.Fatalf("added %v updated %v removed %v", added, updated, removed)
	}
	if _, err := lb.BatchMembers("p1", []events.MemberSpec{member("10.0.0.1", 80), member("10.0.0.1", 80)}, func() string { return "x" }); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("duplicate in batch: %v", err)
	}
}
