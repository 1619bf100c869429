package apigw_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/l7policies"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/listeners"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/loadbalancers"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/monitors"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/pools"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/quotas"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

// must returns v or fails the test by panicking with err (a test helper
// that composes with gophercloud's (value, error) results).
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("unexpected error: %v", err))
	}
	return v
}

// pendingOrActive accepts both: the fake provisioner may answer before the
// gateway renders its response.
func pendingOrActive(s string) bool {
	return s == "PENDING_CREATE" || s == "PENDING_UPDATE" || s == "ACTIVE"
}

func TestGophercloudDrivesEveryResourceThroughItsLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sc := e.client(tokenA)
	up := true

	// Load balancer.
	lb := must(loadbalancers.Create(ctx, sc, loadbalancers.CreateOpts{Name: "web", VipSubnetID: "subnet-1", Tags: []string{"prod", "web"}, AdminStateUp: &up}).Extract())
	if !pendingOrActive(lb.ProvisioningStatus) || lb.ProjectID != "proja" || lb.CreatedAt.IsZero() {
		t.Fatalf("created lb = %+v", lb)
	}
	e.waitStatus(lb.ID, "ACTIVE")
	got := must(loadbalancers.Get(ctx, sc, lb.ID).Extract())
	if got.VipAddress != "192.0.2.10" || got.OperatingStatus != "ONLINE" {
		t.Fatalf("active lb = %+v", got)
	}
	name := "web2"
	upd := must(loadbalancers.Update(ctx, sc, lb.ID, loadbalancers.UpdateOpts{Name: &name}).Extract())
	if upd.Name != "web2" || upd.ProvisioningStatus != "ACTIVE" {
		t.Fatalf("updated lb = %+v", upd)
	}

	// Listener.
	connLimit := 1000
	li := must(listeners.Create(ctx, sc, listeners.CreateOpts{LoadbalancerID: lb.ID, Protocol: listeners.ProtocolHTTP, ProtocolPort: 80,
		Name: "http", ConnLimit: &connLimit, AllowedCIDRs: []string{"10.0.0.0/8"}, InsertHeaders: map[string]string{"X-Forwarded-For": "true"}}).Extract())
	if !pendingOrActive(li.ProvisioningStatus) || li.ConnLimit != 1000 || len(li.Loadbalancers) != 1 {
		t.Fatalf("listener = %+v", li)
	}
	e.waitStatus(lb.ID, "ACTIVE")
	lname := "http-renamed"
	li = must(listeners.Update(ctx, sc, li.ID, listeners.UpdateOpts{Name: &lname}).Extract())
	if li.Name != lname {
		t.Fatalf("listener update = %+v", li)
	}
	e.waitStatus(lb.ID, "ACTIVE")

	// Pools: a default pool on the listener and a second one on the LB.
	pool := must(pools.Create(ctx, sc, pools.CreateOpts{ListenerID: li.ID, Protocol: pools.ProtocolHTTP, LBMethod: pools.LBMethodRoundRobin,
		Name: "web-pool", Persistence: &pools.SessionPersistence{Type: "HTTP_COOKIE"}}).Extract())
	e.waitStatus(lb.ID, "ACTIVE")
	li = must(listeners.Get(ctx, sc, li.ID).Extract())
	if li.DefaultPoolID != pool.ID {
		t.Fatalf("listener default pool = %q, want %q", li.DefaultPoolID, pool.ID)
	}
	pool2 := must(pools.Create(ctx, sc, pools.CreateOpts{LoadbalancerID: lb.ID, Protocol: pools.ProtocolHTTP, LBMethod: pools.LBMethodLeastConnections, Name: "api-pool"}).Extract())
	e.waitStatus(lb.ID, "ACTIVE")
	pdesc := "the api"
	pool2 = must(pools.Update(ctx, sc, pool2.ID, pools.UpdateOpts{Description: &pdesc, LBMethod: pools.LBMethodSourceIp}).Extract())
	if pool2.LBMethod != "SOURCE_IP" || pool2.Description != pdesc {
		t.Fatalf("pool update = %+v", pool2)
	}
	e.waitStatus(lb.ID, "ACTIVE")

	// Members, one by one and in a batch.
	w := 10
	m1 := must(pools.CreateMember(ctx, sc, pool.ID, pools.CreateMemberOpts{Address: "10.0.1.1", ProtocolPort: 8080, Weight: &w}).Extract())
	e.waitStatus(lb.ID, "ACTIVE")
	m2 := must(pools.CreateMember(ctx, sc, pool.ID, pools.CreateMemberOpts{Address: "10.0.1.2", ProtocolPort: 8080}).Extract())
	e.waitStatus(lb.ID, "ACTIVE")
	w2 := 5
	m2 = must(pools.UpdateMember(ctx, sc, pool.ID, m2.ID, pools.UpdateMemberOpts{Weight: &w2}).Extract())
	if m2.Weight != 5 {
		t.Fatalf("member update = %+v", m2)
	}
	e.waitStatus(lb.ID, "ACTIVE")
	ms := must(pools.ListMembers(sc, pool.ID, nil).AllPages(ctx))
	members := must(pools.ExtractMembers(ms))
	if len(members) != 2 {
		t.Fatalf("members = %+v", members)
	}
	w3 := 7
	if err := pools.BatchUpdateMembers(ctx, sc, pool.ID, []pools.BatchUpdateMemberOpts{
		{Address: "10.0.1.1", ProtocolPort: 8080, Weight: &w3},
		{Address: "10.0.1.3", ProtocolPort: 8080},
	}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(lb.ID, "ACTIVE")
	members = must(pools.ExtractMembers(must(pools.ListMembers(sc, pool.ID, nil).AllPages(ctx))))
	byAddr := map[string]pools.Member{}
	for _, m := range members {
		byAddr[m.Address] = m
	}
	if len(members) != 2 || byAddr["10.0.1.1"].Weight != 7 || byAddr["10.0.1.1"].ID != m1.ID || byAddr["10.0.1.3"].ID == "" {
		t.Fatalf("after batch: %+v", members)
	}
	if _, err := pools.GetMember(ctx, sc, pool.ID, m2.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Fatalf("removed member: %v", err)
	}

	// Health monitor.
	hm := must(monitors.Create(ctx, sc, monitors.CreateOpts{PoolID: pool.ID, Type: monitors.TypeHTTP, Delay: 5, Timeout: 3, MaxRetries: 2, URLPath: "/health"}).Extract())
	if hm.HTTPMethod != "GET" || hm.ExpectedCodes != "200" || hm.MaxRetriesDown != 3 {
		t.Fatalf("monitor defaults = %+v", hm)
	}
	e.waitStatus(lb.ID, "ACTIVE")
	hm = must(monitors.Update(ctx, sc, hm.ID, monitors.UpdateOpts{Delay: 10, ExpectedCodes: "200-204"}).Extract())
	if hm.Delay != 10 || hm.ExpectedCodes != "200-204" {
		t.Fatalf("monitor update = %+v", hm)
	}
	e.waitStatus(lb.ID, "ACTIVE")
	if _, err := monitors.Create(ctx, sc, monitors.CreateOpts{PoolID: pool.ID, Type: monitors.TypeTCP, Delay: 5, Timeout: 3, MaxRetries: 2}).Extract(); !gophercloud.ResponseCodeIs(err, 409) {
		t.Fatalf("second monitor on a pool: %v", err)
	}

	// L7 policy and rules.
	pol := must(l7policies.Create(ctx, sc, l7policies.CreateOpts{ListenerID: li.ID, Action: l7policies.ActionRedirectToPool, RedirectPoolID: pool2.ID, Name: "api"}).Extract())
	if pol.Position != 1 {
		t.Fatalf("policy = %+v", pol)
	}
	e.waitStatus(lb.ID, "ACTIVE")
	rule := must(l7policies.CreateRule(ctx, sc, pol.ID, l7policies.CreateRuleOpts{RuleType: l7policies.TypePath, CompareType: l7policies.CompareTypeStartWith, Value: "/api"}).Extract())
	e.waitStatus(lb.ID, "ACTIVE")
	rule = must(l7policies.UpdateRule(ctx, sc, pol.ID, rule.ID, l7policies.UpdateRuleOpts{Value: "/v2/api"}).Extract())
	if rule.Value != "/v2/api" {
		t.Fatalf("rule update = %+v", rule)
	}
	e.waitStatus(lb.ID, "ACTIVE")
	rules := must(l7policies.ExtractRules(must(l7policies.ListRules(sc, pol.ID, l7policies.ListRulesOpts{}).AllPages(ctx))))
	if len(rules) != 1 {
		t.Fatalf("rules = %+v", rules)
	}
	pname := "api-v2"
	pol = must(l7policies.Update(ctx, sc, pol.ID, l7policies.UpdateOpts{Name: &pname}).Extract())
	if pol.Name != pname || len(pol.Rules) != 1 {
		t.Fatalf("policy update = %+v", pol)
	}
	e.waitStatus(lb.ID, "ACTIVE")

	// Status tree and stats.
	tree := must(loadbalancers.GetStatuses(ctx, sc, lb.ID).Extract())
	if tree.Loadbalancer == nil || len(tree.Loadbalancer.Listeners) != 1 || len(tree.Loadbalancer.Listeners[0].Pools) != 1 ||
		len(tree.Loadbalancer.Listeners[0].Pools[0].Members) != 2 || tree.Loadbalancer.Listeners[0].Pools[0].Monitor.ID != hm.ID {
		t.Fatalf("status tree = %+v", tree.Loadbalancer)
	}
	st := must(loadbalancers.GetStats(ctx, sc, lb.ID).Extract())
	if st.BytesIn != 100 || st.ActiveConnections != 3 {
		t.Fatalf("stats = %+v", st)
	}
	lst := must(listeners.GetStats(ctx, sc, li.ID).Extract())
	if lst.BytesIn != 42 {
		t.Fatalf("listener stats = %+v", lst)
	}

	// Lists with filters.
	all := must(pools.ExtractPools(must(pools.List(sc, pools.ListOpts{LoadbalancerID: lb.ID}).AllPages(ctx))))
	if len(all) != 2 {
		t.Fatalf("pools of lb = %d", len(all))
	}
	named := must(pools.ExtractPools(must(pools.List(sc, pools.ListOpts{Name: "api-pool"}).AllPages(ctx))))
	if len(named) != 1 || named[0].ID != pool2.ID {
		t.Fatalf("pools named api-pool = %+v", named)
	}
	lbs := must(loadbalancers.ExtractLoadBalancers(must(loadbalancers.List(sc, loadbalancers.ListOpts{Tags: []string{"prod"}}).AllPages(ctx))))
	if len(lbs) != 1 {
		t.Fatalf("lbs tagged prod = %d", len(lbs))
	}
	hms := must(monitors.ExtractMonitors(must(monitors.List(sc, monitors.ListOpts{}).AllPages(ctx))))
	pols := must(l7policies.ExtractL7Policies(must(l7policies.List(sc, l7policies.ListOpts{}).AllPages(ctx))))
	lis := must(listeners.ExtractListeners(must(listeners.List(sc, listeners.ListOpts{}).AllPages(ctx))))
	if len(hms) != 1 || len(pols) != 1 || len(lis) != 1 {
		t.Fatalf("monitors %d policies %d listeners %d", len(hms), len(pols), len(lis))
	}

	// Deletes, children first.
	for _, del := range []func() error{
		func() error { return l7policies.DeleteRule(ctx, sc, pol.ID, rule.ID).ExtractErr() },
		func() error { return l7policies.Delete(ctx, sc, pol.ID).ExtractErr() },
		func() error { return monitors.Delete(ctx, sc, hm.ID).ExtractErr() },
		func() error { return pools.DeleteMember(ctx, sc, pool.ID, m1.ID).ExtractErr() },
	} {
		if err := del(); err != nil {
			t.Fatal(err)
		}
		e.waitStatus(lb.ID, "ACTIVE")
	}
	// A non-cascade delete of a load balancer with children is refused.
	if err := loadbalancers.Delete(ctx, sc, lb.ID, loadbalancers.DeleteOpts{}).ExtractErr(); !gophercloud.ResponseCodeIs(err, 409) {
		t.Fatalf("delete with children: %v", err)
	}
	if err := loadbalancers.Delete(ctx, sc, lb.ID, loadbalancers.DeleteOpts{Cascade: true}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(lb.ID, "")
	if _, err := loadbalancers.Get(ctx, sc, lb.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Fatalf("deleted lb: %v", err)
	}
	if _, err := pools.Get(ctx, sc, pool.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Fatalf("pool of deleted lb: %v", err)
	}
}

func TestGophercloudPaginatesSortsAndManagesQuotas(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sc := e.client(tokenB)
	var ids []string
	for i := 0; i < 5; i++ {
		lb := must(loadbalancers.Create(ctx, sc, loadbalancers.CreateOpts{Name: fmt.Sprintf("lb-%d", 4-i), VipSubnetID: "s"}).Extract())
		ids = append(ids, lb.ID)
	}
	pages := 0
	var seen []string
	err := loadbalancers.List(sc, loadbalancers.ListOpts{Limit: 2}).EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
		pages++
		lbs, err := loadbalancers.ExtractLoadBalancers(p)
		for _, lb := range lbs {
			seen = append(seen, lb.ID)
		}
		return true, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if pages != 3 || fmt.Sprint(seen) != fmt.Sprint(ids) {
		t.Fatalf("pages=%d seen=%v want %v", pages, seen, ids)
	}
	// page_reverse walks back from a marker; previous/next links are given.
	var page struct {
		LoadBalancers []map[string]any   `json:"loadbalancers"`
		Links         []gophercloud.Link `json:"loadbalancers_links"`
	}
	e.do("GET", "/v2.0/lbaas/loadbalancers?limit=2&page_reverse=true&marker="+ids[4]+"&fields=id&fields=name", tokenB, nil, &page)
	if len(page.LoadBalancers) != 2 || page.LoadBalancers[0]["id"] != ids[2] || page.LoadBalancers[1]["id"] != ids[3] ||
		len(page.LoadBalancers[0]) != 2 || len(page.Links) != 2 {
		t.Fatalf("reverse page = %+v", page)
	}
	e.do("GET", "/v2.0/lbaas/loadbalancers?limit=2&marker="+ids[1], tokenB, nil, &page)
	if len(page.LoadBalancers) != 2 || page.LoadBalancers[0]["id"] != ids[2] || len(page.Links) != 2 {
		t.Fatalf("middle page = %+v", page)
	}
	sorted := must(loadbalancers.ExtractLoadBalancers(must(loadbalancers.List(sc, loadbalancers.ListOpts{SortKey: "name", SortDir: "asc"}).AllPages(ctx))))
	if sorted[0].Name != "lb-0" || sorted[4].Name != "lb-4" {
		t.Fatalf("sorted = %v", sorted)
	}
	// Project A sees none of them.
	if n := len(must(loadbalancers.ExtractLoadBalancers(must(loadbalancers.List(e.client(tokenA), nil).AllPages(ctx))))); n != 0 {
		t.Fatalf("project A sees %d of B's load balancers", n)
	}

	// Quotas through gophercloud (admin), enforced on create.
	admin := e.client(adminToken)
	one := 5
	q := must(quotas.Update(ctx, admin, "projb", quotas.UpdateOpts{Loadbalancer: &one}).Extract())
	if q.Loadbalancer != 5 || q.Listener != -1 {
		t.Fatalf("quota = %+v", q)
	}
	got := must(quotas.Get(ctx, sc, "projb").Extract())
	if got.Loadbalancer != 5 {
		t.Fatalf("quota seen by the project = %+v", got)
	}
	if _, err := loadbalancers.Create(ctx, sc, loadbalancers.CreateOpts{Name: "sixth", VipSubnetID: "s"}).Extract(); !gophercloud.ResponseCodeIs(err, 403) {
		t.Fatalf("create over quota: %v", err)
	}
	if _, err := quotas.Update(ctx, sc, "projb", quotas.UpdateOpts{Loadbalancer: &one}).Extract(); !gophercloud.ResponseCodeIs(err, 403) {
		t.Fatalf("member setting quotas: %v", err)
	}
	if _, err := quotas.Get(ctx, sc, "proja").Extract(); !gophercloud.ResponseCodeIs(err, 403) {
		t.Fatalf("reading another project's quota: %v", err)
	}
}
