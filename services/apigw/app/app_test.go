package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/apigw/app"
	"github.com/elbcloud/elb/services/apigw/app/apptest"
	"github.com/elbcloud/elb/services/apigw/auth"
	"github.com/elbcloud/elb/services/apigw/domain"
	"github.com/elbcloud/elb/services/apigw/readmodel"
)

// racingStore lets another writer append to the same aggregate just before
// each of the first `races` appends, as the provisioner might.
type racingStore struct {
	*apptest.MemStore
	races int
}

func (s *racingStore) Append(ctx context.Context, aggType, aggID string, expected uint64, cmd string, evs ...events.Envelope) (eventstore.AppendResult, error) {
	if s.races > 0 && aggType == events.AggLoadBalancer && expected > 0 {
		s.races--
		_ = s.AppendEvent(aggType, aggID, &events.ConfigApplied{LoadBalancerID: aggID, NodeID: "n1", Version: 1}, events.Meta{})
	}
	return s.MemStore.Append(ctx, aggType, aggID, expected, cmd, evs...)
}

func newService(races int) (*app.Service, *racingStore, *readmodel.Model) {
	model := readmodel.New()
	store := &racingStore{MemStore: apptest.NewMemStore(model.Apply), races: races}
	svc := app.New(store, model, store, nil, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		DefaultQuotas: map[string]int{"loadbalancer": 2}})
	return svc, store, model
}

var member = app.Cmd{P: auth.Principal{User: "u", Project: "p1", Role: auth.RoleMember}}

func activeLB(t *testing.T, svc *app.Service, store *racingStore) string {
	t.Helper()
	id, err := svc.CreateLoadBalancer(context.Background(), member, events.LoadBalancerSpec{Name: "x", AdminStateUp: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.AppendEvent(events.AggLoadBalancer, id, &events.ELBActive{}, events.Meta{ProjectID: "p1"}); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestCommandsRetryWhenAnotherWriterWins(t *testing.T) {
	svc, store, model := newService(3)
	lb := activeLB(t, svc, store)
	id, err := svc.CreateListener(context.Background(), member, events.ListenerSpec{LoadBalancerID: lb, Protocol: "TCP", ProtocolPort: 80, ConnectionLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := model.Listener(id); !ok || store.races != 0 {
		t.Fatalf("listener not created after %d races left", store.races)
	}
}

func TestCommandsGiveUpAfterTooManyConflicts(t *testing.T) {
	svc, store, _ := newService(0)
	lb := activeLB(t, svc, store)
	store.races = 100
	_, err := svc.CreateListener(context.Background(), member, events.ListenerSpec{LoadBalancerID: lb, Protocol: "TCP", ProtocolPort: 80, ConnectionLimit: -1})
	if !errors.Is(err, app.ErrBusy) {
		t.Fatalf("err = %v", err)
	}
}

func TestQuotasAndRolesAreEnforced(t *testing.T) {
	svc, store, _ := newService(0)
	activeLB(t, svc, store)
	activeLB(t, svc, store)
	if _, err := svc.CreateLoadBalancer(context.Background(), member, events.LoadBalancerSpec{AdminStateUp: true}); !errors.Is(err, app.ErrQuotaExceeded) {
		t.Fatalf("third load balancer: %v", err)
	}
	reader := app.Cmd{P: auth.Principal{Project: "p1", Role: auth.RoleReader}}
	if _, err := svc.CreateLoadBalancer(context.Background(), reader, events.LoadBalancerSpec{}); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("reader create: %v", err)
	}
	if err := svc.SetQuota(context.Background(), member, "p1", map[string]int{"loadbalancer": 5}); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("member sets quota: %v", err)
	}
	admin := app.Cmd{P: auth.Principal{Project: "admin", Role: auth.RoleAdmin}, Admin: true}
	if err := svc.SetQuota(context.Background(), admin, "p1", map[string]int{"loadbalancer": 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateLoadBalancer(context.Background(), member, events.LoadBalancerSpec{AdminStateUp: true}); err != nil {
		t.Fatalf("after raising the quota: %v", err)
	}
	other := app.Cmd{P: auth.Principal{Project: "p2", Role: auth.RoleMember}}
	lbs := svc.Model().LoadBalancers("p1", false)
	if err := svc.DeleteLoadBalancer(context.Background(), other, lbs[0].ID, true); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("other project deletes: %v", err)
	}
}
