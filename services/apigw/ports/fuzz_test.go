package ports_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/httpx"
	"github.com/elbcloud/elb/services/apigw/app"
	"github.com/elbcloud/elb/services/apigw/app/apptest"
	"github.com/elbcloud/elb/services/apigw/auth"
	"github.com/elbcloud/elb/services/apigw/ports"
	"github.com/elbcloud/elb/services/apigw/readmodel"
)

// fixture is an API over an in-memory store with one load balancer tree.
type fixture struct {
	h     http.Handler
	store *apptest.MemStore
	model *readmodel.Model
	lb    string
	ids   map[string]string
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	model := readmodel.New()
	store := apptest.NewMemStore(model.Apply)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := app.New(store, model, store, nil, app.Options{Logger: quiet})
	authn, err := auth.New(auth.Config{AdminToken: "admin-token-fuzz", TokensEnv: "member-token-fuzz:p1:member,reader-token-fuzz:p1:reader"})
	if err != nil {
		tb.Fatal(err)
	}
	e := httpx.NewEngine(httpx.Options{Service: "apigw-test", Logger: quiet})
	ports.New(svc, authn, ports.Options{Logger: quiet, OpenAPI: []byte("{}")}).Register(e)
	f := &fixture{h: e, store: store, model: model, ids: map[string]string{}}
	f.lb = f.create(tb, "/v2.0/lbaas/loadbalancers", `{"loadbalancer":{"name":"f"}}`, "loadbalancer")
	f.ids["LB"] = f.lb
	f.ids["LI"] = f.create(tb, "/v2.0/lbaas/listeners", `{"listener":{"loadbalancer_id":"`+f.lb+`","protocol":"HTTP","protocol_port":80}}`, "listener")
	f.ids["PO"] = f.create(tb, "/v2.0/lbaas/pools", `{"pool":{"listener_id":"`+f.ids["LI"]+`","protocol":"HTTP","lb_algorithm":"ROUND_ROBIN"}}`, "pool")
	f.ids["ME"] = f.create(tb, "/v2.0/lbaas/pools/"+f.ids["PO"]+"/members", `{"member":{"address":"10.0.0.1","protocol_port":80}}`, "member")
	f.ids["HM"] = f.create(tb, "/v2.0/lbaas/healthmonitors", `{"healthmonitor":{"pool_id":"`+f.ids["PO"]+`","type":"TCP","delay":5,"timeout":2,"max_retries":3}}`, "healthmonitor")
	f.ids["L7"] = f.create(tb, "/v2.0/lbaas/l7policies", `{"l7policy":{"listener_id":"`+f.ids["LI"]+`","action":"REJECT"}}`, "l7policy")
	f.ids["RU"] = f.create(tb, "/v2.0/lbaas/l7policies/"+f.ids["L7"]+"/rules", `{"rule":{"type":"PATH","compare_type":"STARTS_WITH","value":"/x"}}`, "rule")
	return f
}

// settle plays the provisioner: every pending load balancer becomes ACTIVE
// (or DELETED).
func (f *fixture) settle() {
	for _, lb := range f.model.LoadBalancers("", false) {
		switch lb.ProvisioningStatus {
		case "PENDING_CREATE", "PENDING_UPDATE":
			_ = f.store.AppendEvent(events.AggLoadBalancer, lb.ID, &events.ELBActive{}, events.Meta{ProjectID: lb.ProjectID})
		case "PENDING_DELETE":
			_ = f.store.AppendEvent(events.AggLoadBalancer, lb.ID, &events.ELBDeleted{}, events.Meta{ProjectID: lb.ProjectID})
		}
	}
}

func (f *fixture) serve(method, path, token string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(context.Background(), method, "http://elb"+path, bytes.NewReader(body))
	req.Header.Set("X-Auth-Token", token)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	return w
}

func (f *fixture) create(tb testing.TB, path, body, wrapper string) string {
	tb.Helper()
	w := f.serve("POST", path, "member-token-fuzz", []byte(body))
	if w.Code != 201 {
		tb.Fatalf("POST %s: %d %s", path, w.Code, w.Body)
	}
	var out map[string]map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	f.settle()
	return out[wrapper]["id"].(string)
}

var methods = []string{"GET", "POST", "PUT", "DELETE", "PATCH"}

var (
	fuzzOnce sync.Once
	fuzzFix  *fixture
	fuzzMu   sync.Mutex
)

// FuzzAPI sends arbitrary requests to the whole API: no input may cause a
// 5xx or a panic, and every error is an Octavia fault with a code.
func FuzzAPI(f *testing.F) {
	seeds := []struct {
		m    byte
		path string
		body string
	}{
		{1, "/v2.0/lbaas/loadbalancers", `{"loadbalancer":{"name":"x","vip_address":"10.0.0.1","tags":["a"]}}`},
		{2, "/v2.0/lbaas/loadbalancers/{LB}", `{"loadbalancer":{"name":null,"l7_nodes":3}}`},
		{1, "/v2.0/lbaas/listeners", `{"listener":{"loadbalancer_id":"{LB}","protocol":"TCP","protocol_port":443,"scheduler":"mh","forward_method":"DR"}}`},
		{2, "/v2.0/lbaas/listeners/{LI}", `{"listener":{"default_pool_id":null,"allowed_cidrs":["::/0"]}}`},
		{1, "/v2.0/lbaas/pools", `{"pool":{"loadbalancer_id":"{LB}","protocol":"HTTP","lb_algorithm":"SOURCE_IP","session_persistence":{"type":"APP_COOKIE","cookie_name":"s"}}}`},
		{2, "/v2.0/lbaas/pools/{PO}/members", `{"members":[{"address":"10.0.0.2","protocol_port":80},{"address":"10.0.0.3","protocol_port":80,"weight":0}]}`},
		{1, "/v2.0/lbaas/pools/{PO}/members", `{"member":{"address":"fe80::1","protocol_port":1,"monitor_port":65535}}`},
		{2, "/v2.0/lbaas/healthmonitors/{HM}", `{"healthmonitor":{"delay":10,"timeout":11}}`},
		{1, "/v2.0/lbaas/l7policies", `{"l7policy":{"listener_id":"{LI}","action":"REDIRECT_TO_URL","redirect_url":"http://x/"}}`},
		{2, "/v2.0/lbaas/l7policies/{L7}/rules/{RU}", `{"rule":{"compare_type":"REGEX","value":"(["}}`},
		{0, "/v2.0/lbaas/loadbalancers?limit=1&sort_key=name&sort_dir=desc&fields=id&tags-any=a,b", ""},
		{0, "/v2.0/lbaas/members?marker=zz&page_reverse=true", ""},
		{0, "/v2.0/lbaas/loadbalancers/{LB}/status", ""},
		{0, "/v1/events?type=ELBActive&from_seq=1&to_seq=2", ""},
		{0, "/v1/metrics/statistics?MetricName=Latency&Period=60&Dimensions=LoadBalancer={LB}", ""},
		{2, "/v2.0/quotas/p1", `{"quota":{"loadbalancer":-1,"member":5}}`},
		{3, "/v2.0/lbaas/loadbalancers/{LB}?cascade=true", ""},
		{1, "/v2.0/lbaas/loadbalancers", `{"loadbalancer":{"name":"\u0000"}}`},
		{1, "/v2.0/lbaas/loadbalancers", `[1,2,3]`},
		{1, "/v2.0/lbaas/loadbalancers", `{"loadbalancer":{"listeners":[{}]}}`},
	}
	for _, s := range seeds {
		f.Add(s.m, s.path, []byte(s.body), false)
	}
	f.Fuzz(func(t *testing.T, m byte, path string, body []byte, admin bool) {
		fuzzOnce.Do(func() { fuzzFix = newFixture(t) })
		fuzzMu.Lock()
		defer fuzzMu.Unlock()
		fx := fuzzFix
		for k, v := range fx.ids {
			path = strings.ReplaceAll(path, "{"+k+"}", v)
			body = bytes.ReplaceAll(body, []byte("{"+k+"}"), []byte(v))
		}
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#") || len(path) > 4096 {
			return
		}
		if _, err := url.ParseRequestURI("http://elb" + path); err != nil {
			return // not a request a client can send
		}
		token := "member-token-fuzz"
		if admin {
			token = "admin-token-fuzz"
		}
		w := fx.serve(methods[int(m)%len(methods)], path, token, body)
		fx.settle()
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s %q: %d %s", methods[int(m)%len(methods)], path, body, w.Code, w.Body)
		}
		if w.Code >= 400 && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("error without JSON body: %d %q", w.Code, w.Body)
		}
		if w.Code >= 400 {
			var fault ports.Fault
			if err := json.Unmarshal(w.Body.Bytes(), &fault); err != nil || fault.Code == "" || fault.FaultString == "" {
				t.Fatalf("bad fault %q", w.Body)
			}
		}
	})
}

// FuzzDecodeRequests feeds arbitrary bodies to every request decoder and
// validator: they must return an error or a valid spec, never panic.
func FuzzDecodeRequests(f *testing.F) {
	for _, s := range []string{
		`{"loadbalancer":{"name":"a","vip_address":"::1","min_l7_nodes":2,"max_l7_nodes":1}}`,
		`{"listener":{"loadbalancer_id":"x","protocol":"HTTP","protocol_port":80,"insert_headers":{"X-A":"b"},"connection_limit":null}}`,
		`{"pool":{"listener_id":"l","protocol":"PROXY","lb_algorithm":"ROUND_ROBIN","session_persistence":{"type":"SOURCE_IP","persistence_granularity":"255.255.255.0"}}}`,
		`{"member":{"address":"10.0.0.1","protocol_port":80,"weight":256,"backup":true}}`,
		`{"healthmonitor":{"pool_id":"p","type":"HTTPS","delay":5,"timeout":4,"max_retries":10,"expected_codes":"200-299,301"}}`,
		`{"l7policy":{"listener_id":"l","action":"REDIRECT_PREFIX","redirect_prefix":"https://a.example","redirect_http_code":308}}`,
		`{"rule":{"type":"HEADER","compare_type":"EQUAL_TO","key":"X-A","value":"b","invert":true}}`,
		`{"quota":{"load_balancer":1,"health_monitor":null}}`,
		`{"members":[{"address":"1.1.1.1","protocol_port":1}]}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, create bool) {
		var lb ports.LoadBalancerReq
		if ports.DecodeEnvelope(body, "loadbalancer", &lb) == nil {
			s := events.LoadBalancerSpec{AdminStateUp: true}
			_ = lb.Apply(&s, create)
		}
		var li ports.ListenerReq
		if ports.DecodeEnvelope(body, "listener", &li) == nil {
			s := events.ListenerSpec{ConnectionLimit: -1}
			_ = li.Apply(&s, create)
		}
		var po ports.PoolReq
		if ports.DecodeEnvelope(body, "pool", &po) == nil {
			s := events.PoolSpec{}
			_ = po.Apply(&s, create)
		}
		var me ports.MemberReq
		if ports.DecodeEnvelope(body, "member", &me) == nil {
			s := events.MemberSpec{Weight: 1}
			_ = me.Apply(&s, create)
		}
		var hm ports.MonitorReq
		if ports.DecodeEnvelope(body, "healthmonitor", &hm) == nil {
			s := events.HealthMonitorSpec{MaxRetriesDown: 3}
			_ = hm.Apply(&s, create)
		}
		var pol ports.PolicyReq
		if ports.DecodeEnvelope(body, "l7policy", &pol) == nil {
			s := events.L7PolicySpec{}
			_ = pol.Apply(&s, create)
		}
		var ru ports.RuleReq
		if ports.DecodeEnvelope(body, "rule", &ru) == nil {
			s := events.L7RuleSpec{}
			_ = ru.Apply(&s, create)
		}
		var q ports.QuotaReq
		if ports.DecodeEnvelope(body, "quota", &q) == nil {
			_ = app.ValidateQuotas(q.Map())
		}
		var ms []ports.MemberReq
		if ports.DecodeEnvelope(body, "members", &ms) == nil {
			for i := range ms {
				s := events.MemberSpec{}
				_ = ms[i].Apply(&s, true)
			}
		}
		var ev struct{}
		_ = json.Unmarshal(body, &ev)
		_, _, _ = ports.ParseEventFilter(map[string][]string{"type": {string(body)}, "since": {string(body)}, "from_seq": {string(body)}})
	})
}
