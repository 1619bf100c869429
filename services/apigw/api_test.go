package apigw_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/apigw"
)

type lbBody struct {
	LoadBalancer struct {
		ID                 string `json:"id"`
		ProvisioningStatus string `json:"provisioning_status"`
		OperatingStatus    string `json:"operating_status"`
		ProvisioningLog    *struct {
			Reason string `json:"reason"`
			Step   string `json:"step"`
			Log    []struct {
				Step    string `json:"step"`
				Message string `json:"message"`
			} `json:"log"`
		} `json:"provisioning_log"`
	} `json:"loadbalancer"`
}

type fault struct {
	FaultCode   string  `json:"faultcode"`
	FaultString string  `json:"faultstring"`
	DebugInfo   *string `json:"debuginfo"`
	Code        string  `json:"code"`
}

func (e *env) createLB(token, name string) string {
	e.t.Helper()
	var out lbBody
	if code := e.do("POST", "/v2.0/lbaas/loadbalancers", token, map[string]any{"loadbalancer": map[string]any{"name": name, "vip_subnet_id": "sub"}}, &out); code != 201 {
		e.t.Fatalf("create %s: %d", name, code)
	}
	return out.LoadBalancer.ID
}

func TestTenantsCannotSeeOrTouchEachOthersResources(t *testing.T) {
	e := newEnv(t)
	a := e.createLB(tokenA, "a-lb")
	e.waitStatus(a, "ACTIVE")
	var li struct {
		Listener struct{ ID string } `json:"listener"`
	}
	if code := e.do("POST", "/v2.0/lbaas/listeners", tokenA, `{"listener":{"loadbalancer_id":"`+a+`","protocol":"TCP","protocol_port":443,"scheduler":"wlc","forward_method":"DR"}}`, &li); code != 201 {
		t.Fatalf("listener: %d", code)
	}
	e.waitStatus(a, "ACTIVE")

	cases := []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"B reads A's load balancer", "GET", "/v2.0/lbaas/loadbalancers/" + a, tokenB, "", 404},
		{"B reads A's status tree", "GET", "/v2.0/lbaas/loadbalancers/" + a + "/status", tokenB, "", 404},
		{"B reads A's stats", "GET", "/v2.0/lbaas/loadbalancers/" + a + "/stats", tokenB, "", 404},
		{"B reads A's listener", "GET", "/v2.0/lbaas/listeners/" + li.Listener.ID, tokenB, "", 404},
		{"B renames A's load balancer", "PUT", "/v2.0/lbaas/loadbalancers/" + a, tokenB, `{"loadbalancer":{"name":"x"}}`, 404},
		{"B deletes A's load balancer", "DELETE", "/v2.0/lbaas/loadbalancers/" + a, tokenB, "", 404},
		{"B deletes A's listener", "DELETE", "/v2.0/lbaas/listeners/" + li.Listener.ID, tokenB, "", 404},
		{"B adds a listener to A's load balancer", "POST", "/v2.0/lbaas/listeners", tokenB, `{"listener":{"loadbalancer_id":"` + a + `","protocol":"TCP","protocol_port":80}}`, 404},
		{"B reads A's events", "GET", "/v1/events?aggregate_id=" + a + "&project=proja", tokenB, "", 404},
		{"B reads A's top clients", "GET", "/v1/loadbalancers/" + a + "/top", tokenB, "", 404},
		{"B queries A's metrics", "GET", "/v1/metrics/statistics?MetricName=Latency&Period=60&Dimensions=LoadBalancer=" + a, tokenB, "", 404},
		{"B creates in project A", "POST", "/v2.0/lbaas/loadbalancers", tokenB, `{"loadbalancer":{"project_id":"proja"}}`, 403},
		{"a reader creates", "POST", "/v2.0/lbaas/loadbalancers", tokenAReader, `{"loadbalancer":{"name":"r"}}`, 403},
		{"a reader deletes", "DELETE", "/v2.0/lbaas/loadbalancers/" + a, tokenAReader, "", 403},
		{"a reader reads", "GET", "/v2.0/lbaas/loadbalancers/" + a, tokenAReader, "", 200},
		{"no token", "GET", "/v2.0/lbaas/loadbalancers", "", "", 401},
		{"a bad token", "GET", "/v2.0/lbaas/loadbalancers", "not-a-known-token", "", 401},
		{"a member fails over", "PUT", "/v2.0/lbaas/loadbalancers/" + a + "/failover", tokenA, "", 403},
		{"a member sets quotas", "PUT", "/v2.0/lbaas/quotas/proja", tokenA, `{"quota":{"loadbalancer":100}}`, 403},
		{"A reads its metrics", "GET", "/v1/metrics/statistics?MetricName=Latency&Period=60&Dimensions=LoadBalancer=" + a, tokenA, "", 200},
		{"A reads its top clients", "GET", "/v1/loadbalancers/" + a + "/top?kind=url", tokenA, "", 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			var f fault
			got := e.do(c.method, c.path, c.token, body, &f)
			if got != c.want {
				t.Fatalf("status %d, want %d (%+v)", got, c.want, f)
			}
			if got >= 400 && (f.FaultCode != "Client" || f.FaultString == "" || f.Code == "") {
				t.Fatalf("error body %+v", f)
			}
		})
	}
	var list struct {
		LoadBalancers []json.RawMessage `json:"loadbalancers"`
	}
	e.do("GET", "/v2.0/lbaas/loadbalancers", tokenB, nil, &list)
	if len(list.LoadBalancers) != 0 {
		t.Fatalf("B lists %d load balancers", len(list.LoadBalancers))
	}
	e.do("GET", "/v2.0/lbaas/loadbalancers", adminToken, nil, &list)
	if len(list.LoadBalancers) != 1 {
		t.Fatalf("admin lists %d load balancers", len(list.LoadBalancers))
	}
	var metrics struct{ Metrics []json.RawMessage }
	e.do("GET", "/v1/metrics", tokenA, nil, &metrics)
	if len(metrics.Metrics) != 0 {
		t.Fatalf("A sees metrics of a load balancer it does not own: %d", len(metrics.Metrics))
	}
	// The extension fields round-trip.
	var got map[string]map[string]any
	e.do("GET", "/v2.0/lbaas/listeners/"+li.Listener.ID, tokenA, nil, &got)
	if got["listener"]["scheduler"] != "wlc" || got["listener"]["forward_method"] != "DR" {
		t.Fatalf("listener = %v", got["listener"])
	}
}

func TestBadInputIsRejectedWithOctaviaFaultsAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	a := e.createLB(tokenA, "a")
	e.waitStatus(a, "ACTIVE")
	var pool struct {
		Pool struct{ ID string } `json:"pool"`
	}
	if code := e.do("POST", "/v2.0/lbaas/pools", tokenA, `{"pool":{"loadbalancer_id":"`+a+`","protocol":"HTTP","lb_algorithm":"ROUND_ROBIN"}}`, &pool); code != 201 {
		t.Fatalf("pool: %d", code)
	}
	e.waitStatus(a, "ACTIVE")
	p := pool.Pool.ID
	before := e.eventCount()
	big := `{"loadbalancer":{"name":"` + strings.Repeat("x", 2<<20) + `"}}`
	cases := []struct {
		name, method, path, body string
		want                     int
		code                     string
	}{
		{"malformed JSON", "POST", "/v2.0/lbaas/loadbalancers", `{"loadbalancer":`, 400, "invalid_input"},
		{"no envelope", "POST", "/v2.0/lbaas/loadbalancers", `{"name":"x"}`, 400, "invalid_input"},
		{"unknown field", "POST", "/v2.0/lbaas/loadbalancers", `{"loadbalancer":{"nmae":"x"}}`, 400, "invalid_input"},
		{"wrong type", "POST", "/v2.0/lbaas/loadbalancers", `{"loadbalancer":{"name":5}}`, 400, "invalid_input"},
		{"bad VIP address", "POST", "/v2.0/lbaas/loadbalancers", `{"loadbalancer":{"vip_address":"10.0.0.300"}}`, 400, "invalid_input"},
		{"unsupported Octavia field", "POST", "/v2.0/lbaas/loadbalancers", `{"loadbalancer":{"vip_qos_policy_id":"q"}}`, 400, "invalid_input"},
		{"too large", "POST", "/v2.0/lbaas/loadbalancers", big, 413, "body_too_large"},
		{"port 0", "POST", "/v2.0/lbaas/listeners", `{"listener":{"loadbalancer_id":"` + a + `","protocol":"TCP","protocol_port":0}}`, 400, "invalid_input"},
		{"port 65536", "POST", "/v2.0/lbaas/listeners", `{"listener":{"loadbalancer_id":"` + a + `","protocol":"TCP","protocol_port":65536}}`, 400, "invalid_input"},
		{"unknown protocol", "POST", "/v2.0/lbaas/listeners", `{"listener":{"loadbalancer_id":"` + a + `","protocol":"FTP","protocol_port":21}}`, 400, "invalid_input"},
		{"unknown scheduler", "POST", "/v2.0/lbaas/listeners", `{"listener":{"loadbalancer_id":"` + a + `","protocol":"TCP","protocol_port":21,"scheduler":"fastest"}}`, 400, "invalid_input"},
		{"bad allowed CIDR", "POST", "/v2.0/lbaas/listeners", `{"listener":{"loadbalancer_id":"` + a + `","protocol":"TCP","protocol_port":21,"allowed_cidrs":["10.0.0.1/8"]}}`, 400, "invalid_input"},
		{"missing protocol", "POST", "/v2.0/lbaas/listeners", `{"listener":{"loadbalancer_id":"` + a + `","protocol_port":21}}`, 400, "invalid_input"},
		{"unknown load balancer", "POST", "/v2.0/lbaas/listeners", `{"listener":{"loadbalancer_id":"nope","protocol":"TCP","protocol_port":21}}`, 404, "not_found"},
		{"member IP", "POST", "/v2.0/lbaas/pools/" + p + "/members", `{"member":{"address":"10.0.0","protocol_port":80}}`, 400, "invalid_input"},
		{"member weight", "POST", "/v2.0/lbaas/pools/" + p + "/members", `{"member":{"address":"10.0.0.1","protocol_port":80,"weight":257}}`, 400, "invalid_input"},
		{"monitor family", "POST", "/v2.0/lbaas/pools/" + p + "/members", `{"member":{"address":"10.0.0.1","protocol_port":80,"monitor_address":"::1"}}`, 400, "invalid_input"},
		{"monitor timeout >= delay", "POST", "/v2.0/lbaas/healthmonitors", `{"healthmonitor":{"pool_id":"` + p + `","type":"HTTP","delay":3,"timeout":3,"max_retries":3}}`, 400, "invalid_input"},
		{"monitor codes", "POST", "/v2.0/lbaas/healthmonitors", `{"healthmonitor":{"pool_id":"` + p + `","type":"HTTP","delay":5,"timeout":3,"max_retries":3,"expected_codes":"2xx"}}`, 400, "invalid_input"},
		{"cookie persistence on TCP", "POST", "/v2.0/lbaas/pools", `{"pool":{"loadbalancer_id":"` + a + `","protocol":"TCP","lb_algorithm":"ROUND_ROBIN","session_persistence":{"type":"HTTP_COOKIE"}}}`, 400, "invalid_input"},
		{"app cookie without name", "POST", "/v2.0/lbaas/pools", `{"pool":{"loadbalancer_id":"` + a + `","protocol":"HTTP","lb_algorithm":"ROUND_ROBIN","session_persistence":{"type":"APP_COOKIE"}}}`, 400, "invalid_input"},
		{"persistence unknown field", "POST", "/v2.0/lbaas/pools", `{"pool":{"loadbalancer_id":"` + a + `","protocol":"HTTP","lb_algorithm":"ROUND_ROBIN","session_persistence":{"type":"SOURCE_IP","x":1}}}`, 400, "invalid_input"},
		{"immutable protocol", "PUT", "/v2.0/lbaas/pools/" + p, `{"pool":{"protocol":"TCP"}}`, 400, "invalid_input"},
		{"unknown filter", "GET", "/v2.0/lbaas/loadbalancers?colour=red", "", 400, "invalid_input"},
		{"bad limit", "GET", "/v2.0/lbaas/loadbalancers?limit=x", "", 400, "invalid_input"},
		{"bad sort key", "GET", "/v2.0/lbaas/loadbalancers?sort_key=colour", "", 400, "invalid_input"},
		{"unknown marker", "GET", "/v2.0/lbaas/loadbalancers?marker=nope", "", 400, "invalid_input"},
		{"unknown id", "GET", "/v2.0/lbaas/pools/does-not-exist", "", 404, "not_found"},
		{"odd id", "GET", "/v2.0/lbaas/pools/..%2f..", "", 404, "not_found"},
		{"bad metric period", "GET", "/v1/metrics/statistics?MetricName=Latency&Period=x&Dimensions=LoadBalancer=" + a, "", 400, "invalid_input"},
		{"metric query without load balancer", "GET", "/v1/metrics/statistics?MetricName=Latency&Period=60", "", 400, "invalid_input"},
		{"invalid metric query", "GET", "/v1/metrics/statistics?MetricName=Latency&Period=0&Dimensions=LoadBalancer=" + a, "", 400, "invalid_metric_query"},
		{"bad event filter", "GET", "/v1/events?type=Nope", "", 400, "invalid_input"},
		{"bad event range", "GET", "/v1/events?from_seq=9&to_seq=2", "", 400, "invalid_input"},
		{"unknown path", "GET", "/v2.0/lbaas/nothing", "", 404, "not_found"},
		{"bad method", "PATCH", "/v2.0/lbaas/loadbalancers", "", 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			var f fault
			if got := e.do(c.method, c.path, tokenA, body, &f); got != c.want || f.Code != c.code || f.FaultCode != "Client" {
				t.Fatalf("got %d %+v, want %d %s", got, f, c.want, c.code)
			}
		})
	}
	if after := e.eventCount(); after != before {
		t.Fatalf("bad input appended %d events", after-before)
	}
}

// eventCount counts every event in the log (as admin).
func (e *env) eventCount() int {
	req, _ := http.NewRequest("GET", e.url+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		n++
	}
	return n
}

func TestChangesWhilePendingConflictAndFailuresShowTheLog(t *testing.T) {
	e := newEnv(t)
	held := e.createLB(tokenA, "hold-me")
	var f fault
	if code := e.do("POST", "/v2.0/lbaas/listeners", tokenA, `{"listener":{"loadbalancer_id":"`+held+`","protocol":"TCP","protocol_port":80}}`, &f); code != 409 || f.Code != "immutable" {
		t.Fatalf("listener on PENDING_CREATE lb: %d %+v", code, f)
	}
	if code := e.do("PUT", "/v2.0/lbaas/loadbalancers/"+held, tokenA, `{"loadbalancer":{"name":"x"}}`, &f); code != 409 {
		t.Fatalf("update of PENDING_CREATE lb: %d", code)
	}
	if code := e.do("DELETE", "/v2.0/lbaas/loadbalancers/"+held, tokenA, nil, &f); code != 409 {
		t.Fatalf("delete of PENDING_CREATE lb: %d", code)
	}

	failed := e.createLB(tokenA, "fail-me")
	e.waitStatus(failed, "ERROR")
	var got lbBody
	e.do("GET", "/v2.0/lbaas/loadbalancers/"+failed, tokenA, nil, &got)
	l := got.LoadBalancer.ProvisioningLog
	if l == nil || l.Reason != "fake nova failed the second VM" || l.Step != "VMRequested" || len(l.Log) != 2 || got.LoadBalancer.OperatingStatus != "ERROR" {
		t.Fatalf("failed lb = %+v", got.LoadBalancer)
	}
	// An ERROR load balancer can be deleted.
	if code := e.do("DELETE", "/v2.0/lbaas/loadbalancers/"+failed, tokenA, nil, nil); code != 204 {
		t.Fatalf("delete ERROR lb: %d", code)
	}
	e.waitStatus(failed, "")

	// Member health moves operating statuses.
	lb := e.createLB(tokenA, "health")
	e.waitStatus(lb, "ACTIVE")
	var pool struct {
		Pool struct{ ID string } `json:"pool"`
	}
	var li struct {
		Listener struct{ ID string } `json:"listener"`
	}
	e.do("POST", "/v2.0/lbaas/listeners", tokenA, `{"listener":{"loadbalancer_id":"`+lb+`","protocol":"TCP","protocol_port":80}}`, &li)
	e.waitStatus(lb, "ACTIVE")
	e.do("POST", "/v2.0/lbaas/pools", tokenA, `{"pool":{"listener_id":"`+li.Listener.ID+`","protocol":"TCP","lb_algorithm":"ROUND_ROBIN"}}`, &pool)
	e.waitStatus(lb, "ACTIVE")
	var m struct {
		Member struct{ ID string } `json:"member"`
	}
	e.do("POST", "/v2.0/lbaas/pools/"+pool.Pool.ID+"/members", tokenA, `{"member":{"address":"10.1.1.1","protocol_port":80}}`, &m)
	e.waitStatus(lb, "ACTIVE")
	ev := events.MustNew("node", "node-1", &events.RealServerUnhealthy{LoadBalancerID: lb, Address: "10.1.1.1", Port: 80, NodeID: "node-1", Reason: "connect refused"}, events.Meta{})
	if _, err := e.store.Append(e.ctx, "node", "node-1", 0, "", ev); err != nil {
		t.Fatal(err)
	}
	statusOf := func() (string, string) {
		var s struct {
			Statuses struct {
				LoadBalancer struct {
					OperatingStatus string `json:"operating_status"`
					Pools           []struct {
						Members []struct {
							OperatingStatus string `json:"operating_status"`
						} `json:"members"`
					} `json:"pools"`
				} `json:"loadbalancer"`
			} `json:"statuses"`
		}
		e.do("GET", "/v2.0/lbaas/loadbalancers/"+lb+"/status", tokenA, nil, &s)
		if len(s.Statuses.LoadBalancer.Pools) != 1 || len(s.Statuses.LoadBalancer.Pools[0].Members) != 1 {
			return "", ""
		}
		return s.Statuses.LoadBalancer.OperatingStatus, s.Statuses.LoadBalancer.Pools[0].Members[0].OperatingStatus
	}
	waitFor(t, func() bool { l, m := statusOf(); return l == "DEGRADED" && m == "ERROR" }, "member ERROR, lb DEGRADED")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIdempotencyKeyStoresARetriedCreateOnce(t *testing.T) {
	e := newEnv(t)
	body := `{"loadbalancer":{"name":"once"}}`
	var first, second lbBody
	if code := e.do("POST", "/v2.0/lbaas/loadbalancers", tokenA, body, &first, "Idempotency-Key", "k-1"); code != 201 {
		t.Fatalf("first: %d", code)
	}
	if code := e.do("POST", "/v2.0/lbaas/loadbalancers", tokenA, body, &second, "Idempotency-Key", "k-1"); code != 201 {
		t.Fatalf("retry: %d", code)
	}
	if first.LoadBalancer.ID != second.LoadBalancer.ID {
		t.Fatalf("retry created %s, first %s", second.LoadBalancer.ID, first.LoadBalancer.ID)
	}
	// The same key in another project is another command.
	var other lbBody
	e.do("POST", "/v2.0/lbaas/loadbalancers", tokenB, body, &other, "Idempotency-Key", "k-1")
	if other.LoadBalancer.ID == first.LoadBalancer.ID {
		t.Fatal("idempotency keys leak across projects")
	}
	e.waitStatus(first.LoadBalancer.ID, "ACTIVE")
	// Child creates too.
	li := `{"listener":{"loadbalancer_id":"` + first.LoadBalancer.ID + `","protocol":"UDP","protocol_port":53}}`
	var l1, l2 map[string]map[string]any
	e.do("POST", "/v2.0/lbaas/listeners", tokenA, li, &l1, "Idempotency-Key", "k-2")
	e.waitStatus(first.LoadBalancer.ID, "ACTIVE")
	if code := e.do("POST", "/v2.0/lbaas/listeners", tokenA, li, &l2, "Idempotency-Key", "k-2"); code != 201 || l1["listener"]["id"] != l2["listener"]["id"] {
		t.Fatalf("listener retry: %d %v vs %v", code, l2, l1)
	}
	n := 0
	resp := e.rawEvents("/v1/events?aggregate_id="+first.LoadBalancer.ID, tokenA)
	for _, ev := range resp {
		if ev.Type == events.TypeELBRequested || ev.Type == events.TypeListenerCreated {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("stored %d create events, want 2", n)
	}
}

func (e *env) rawEvents(path, token string) []events.Envelope {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("X-Auth-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		e.t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var out []events.Envelope
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var ev events.Envelope
		if err := dec.Decode(&ev); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func TestAuditStreamsEventsByFilterAndProject(t *testing.T) {
	e := newEnv(t)
	a := e.createLB(tokenA, "a")
	b := e.createLB(tokenB, "b")
	e.waitStatus(a, "ACTIVE")
	e.waitStatus(b, "ACTIVE")
	mine := e.rawEvents("/v1/events", tokenA)
	for _, ev := range mine {
		if ev.ProjectID != "proja" {
			t.Fatalf("project A sees %+v", ev)
		}
	}
	if len(mine) != 2 {
		t.Fatalf("project A sees %d events, want 2 (requested, active)", len(mine))
	}
	all := e.rawEvents("/v1/events", adminToken)
	if len(all) != 4 {
		t.Fatalf("admin sees %d events", len(all))
	}
	only := e.rawEvents("/v1/events?type=ELBActive&aggregate_type=loadbalancer&aggregate_id="+b, adminToken)
	if len(only) != 1 || only[0].AggregateID != b || only[0].Sequence == 0 {
		t.Fatalf("filtered = %+v", only)
	}
	ranged := e.rawEvents("/v1/events?from_seq=2&to_seq=3&since="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), adminToken)
	if len(ranged) != 2 || ranged[0].Sequence != 2 {
		t.Fatalf("ranged = %+v", ranged)
	}
}

func TestAdminPowersAreLimitedToAdminNetworks(t *testing.T) {
	e := newEnv(t, func(c *apigw.Config) { c.AdminCIDRs = []string{"10.99.0.0/16"} })
	a := e.createLB(tokenA, "a")
	e.waitStatus(a, "ACTIVE")
	var f fault
	if code := e.do("PUT", "/v2.0/lbaas/quotas/proja", adminToken, `{"quota":{"loadbalancer":1}}`, &f); code != 403 || f.Code != "admin_network" {
		t.Fatalf("quota from outside the admin network: %d %+v", code, f)
	}
	if code := e.do("PUT", "/v2.0/lbaas/loadbalancers/"+a+"/failover", adminToken, nil, &f); code != 403 {
		t.Fatalf("failover from outside the admin network: %d", code)
	}
	// Outside the admin network, the admin sees only its own project.
	var list struct {
		LoadBalancers []json.RawMessage `json:"loadbalancers"`
	}
	e.do("GET", "/v2.0/lbaas/loadbalancers", adminToken, nil, &list)
	if len(list.LoadBalancers) != 0 {
		t.Fatalf("admin outside its network lists %d", len(list.LoadBalancers))
	}
}

func TestAdminFailsOverAndManagesQuotas(t *testing.T) {
	e := newEnv(t, func(c *apigw.Config) { c.AdminCIDRs = []string{"127.0.0.0/8", "::1/128"} })
	a := e.createLB(tokenA, "a")
	e.waitStatus(a, "ACTIVE")
	if code := e.do("PUT", "/v2.0/lbaas/loadbalancers/"+a+"/failover", adminToken, nil, nil); code != 202 {
		t.Fatalf("failover: %d", code)
	}
	e.waitStatus(a, "ACTIVE")
	if code := e.do("PUT", "/v2.0/lbaas/quotas/proja", adminToken, `{"quota":{"listener":0,"health_monitor":2}}`, nil); code != 202 {
		t.Fatalf("set quota: %d", code)
	}
	var q struct{ Quota map[string]any }
	e.do("GET", "/v2.0/lbaas/quotas/proja", tokenA, nil, &q)
	if q.Quota["listener"] != 0.0 || q.Quota["healthmonitor"] != 2.0 || q.Quota["health_monitor"] != 2.0 || q.Quota["loadbalancer"] != -1.0 {
		t.Fatalf("quota = %v", q.Quota)
	}
	var f fault
	if code := e.do("POST", "/v2.0/lbaas/listeners", tokenA, `{"listener":{"loadbalancer_id":"`+a+`","protocol":"TCP","protocol_port":80}}`, &f); code != 403 || f.Code != "quota_exceeded" {
		t.Fatalf("listener over quota: %d %+v", code, f)
	}
	var ql struct{ Quotas []map[string]any }
	e.do("GET", "/v2.0/quotas", adminToken, nil, &ql)
	if len(ql.Quotas) != 1 || ql.Quotas[0]["project_id"] != "proja" {
		t.Fatalf("quota list = %v", ql)
	}
	if code := e.do("DELETE", "/v2.0/quotas/proja", adminToken, nil, nil); code != 204 {
		t.Fatalf("reset quota: %d", code)
	}
	e.do("GET", "/v2.0/lbaas/quotas/defaults", tokenA, nil, &q)
	if q.Quota["listener"] != -1.0 {
		t.Fatalf("defaults = %v", q.Quota)
	}
	if code := e.do("POST", "/v2.0/lbaas/listeners", tokenA, `{"listener":{"loadbalancer_id":"`+a+`","protocol":"TCP","protocol_port":80}}`, nil); code != 201 {
		t.Fatalf("listener after quota reset: %d", code)
	}
}

func TestKeystoneTokensAreValidatedThroughGophercloud(t *testing.T) {
	ks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v3/auth/tokens" || r.Header.Get("X-Subject-Token") == "" {
			http.NotFound(w, r)
			return
		}
		roles := map[string]string{"ks-member-token": "member", "ks-reader-token": "reader"}
		role, ok := roles[r.Header.Get("X-Subject-Token")]
		if !ok || r.Header.Get("X-Auth-Token") != r.Header.Get("X-Subject-Token") {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":404,"message":"Could not find token"}}`))
			return
		}
		w.Header().Set("X-Subject-Token", r.Header.Get("X-Subject-Token"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"token":{"expires_at":"` + time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000000Z") +
			`","issued_at":"2026-01-01T00:00:00.000000Z","methods":["password"],"user":{"id":"u1","name":"kuser","domain":{"id":"default","name":"Default"}},` +
			`"project":{"id":"ksproject","name":"demo","domain":{"id":"default","name":"Default"}},"roles":[{"id":"r1","name":"` + role + `"}]}}`))
	}))
	defer ks.Close()
	e := newEnv(t, func(c *apigw.Config) { c.KeystoneURL = ks.URL })
	var lb lbBody
	if code := e.do("POST", "/v2.0/lbaas/loadbalancers", "ks-member-token", `{"loadbalancer":{"name":"k"}}`, &lb); code != 201 {
		t.Fatalf("keystone member create: %d", code)
	}
	var got map[string]map[string]any
	e.do("GET", "/v2.0/lbaas/loadbalancers/"+lb.LoadBalancer.ID, "ks-reader-token", nil, &got)
	if got["loadbalancer"]["project_id"] != "ksproject" {
		t.Fatalf("lb = %v", got)
	}
	if code := e.do("DELETE", "/v2.0/lbaas/loadbalancers/"+lb.LoadBalancer.ID, "ks-reader-token", nil, nil); code != 403 {
		t.Fatalf("keystone reader delete: %d", code)
	}
	if code := e.do("GET", "/v2.0/lbaas/loadbalancers", "ks-unknown-token", nil, nil); code != 401 {
		t.Fatalf("unknown keystone token: %d", code)
	}
}
