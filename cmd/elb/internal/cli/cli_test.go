package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is a test double of the gateway: it serves canned Octavia bodies
// and moves load balancer "lb1" through PENDING_CREATE → ACTIVE and "bad"
// to ERROR, recording every request.
type fakeAPI struct {
	mu       sync.Mutex
	requests []string
	bodies   []string
	polls    int
	deleted  bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI()+" token="+r.Header.Get("X-Auth-Token"))
	f.bodies = append(f.bodies, string(b))
	w.Header().Set("Content-Type", "application/json")
	lb := func(id, st string) map[string]any {
		m := map[string]any{"id": id, "name": "web", "provisioning_status": st, "operating_status": "OFFLINE", "vip_address": "192.0.2.1",
			"listeners": []any{}, "pools": []any{}}
		if st == "ERROR" {
			m["provisioning_log"] = map[string]any{"reason": "no VIP left", "step": "VIPAllocated",
				"log": []any{map[string]any{"time": "t", "step": "VIPAllocated", "message": "pool empty"}}}
		}
		return m
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/v2.0/lbaas/loadbalancers":
		var req map[string]map[string]any
		_ = json.Unmarshal(b, &req)
		id := "lb1"
		if req["loadbalancer"]["name"] == "bad" {
			id = "bad"
		}
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(map[string]any{"loadbalancer": lb(id, "PENDING_CREATE")})
	case r.Method == "GET" && r.URL.Path == "/v2.0/lbaas/loadbalancers/lb1":
		if f.deleted {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"faultcode":"Client","faultstring":"load balancer lb1 not found","debuginfo":null,"code":"not_found"}`))
			return
		}
		f.polls++
		st := "PENDING_CREATE"
		if f.polls > 2 {
			st = "ACTIVE"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"loadbalancer": lb("lb1", st)})
	case r.Method == "PUT" && r.URL.Path == "/v2.0/lbaas/loadbalancers/lb1/failover":
		w.WriteHeader(202)
	case r.Method == "GET" && r.URL.Path == "/v2.0/lbaas/loadbalancers/bad":
		_ = json.NewEncoder(w).Encode(map[string]any{"loadbalancer": lb("bad", "ERROR")})
	case r.Method == "DELETE" && r.URL.Path == "/v2.0/lbaas/loadbalancers/lb1":
		f.deleted = true
		w.WriteHeader(204)
	case r.Method == "GET" && r.URL.Path == "/v2.0/lbaas/loadbalancers":
		_ = json.NewEncoder(w).Encode(map[string]any{"loadbalancers": []any{lb("lb1", "ACTIVE"), lb("lb2", "ERROR")}, "loadbalancers_links": []any{}})
	case r.Method == "POST" && r.URL.Path == "/v2.0/lbaas/pools/p1/members":
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(map[string]any{"member": map[string]any{"id": "m1", "address": "10.0.0.1", "protocol_port": 80}})
	case r.Method == "GET" && r.URL.Path == "/v2.0/lbaas/pools/p1":
		_ = json.NewEncoder(w).Encode(map[string]any{"pool": map[string]any{"id": "p1", "loadbalancers": []any{map[string]any{"id": "lb1"}}}})
	case r.Method == "GET" && r.URL.Path == "/v2.0/lbaas/loadbalancers/lb1/status":
		_ = json.NewEncoder(w).Encode(map[string]any{"statuses": map[string]any{"loadbalancer": map[string]any{"id": "lb1", "name": "web",
			"provisioning_status": "ACTIVE", "operating_status": "ONLINE", "listeners": []any{map[string]any{"id": "l1", "name": "http",
				"provisioning_status": "ACTIVE", "operating_status": "ONLINE", "pools": []any{map[string]any{"id": "p1", "provisioning_status": "ACTIVE",
					"operating_status": "ONLINE", "members": []any{map[string]any{"id": "m1", "address": "10.0.0.1", "protocol_port": 80,
						"provisioning_status": "ACTIVE", "operating_status": "ERROR"}}}}}}, "nodes": []any{map[string]any{"id": "n1", "address": "127.0.1.1"}}}}})
	case r.URL.Path == "/v1/events":
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = w.Write([]byte(`{"id":"e1","type":"ELBRequested","aggregate_type":"loadbalancer","aggregate_id":"lb1","sequence":1,"occurred_at":"2026-01-01T00:00:00Z","project_id":"p","actor":"alice","payload":{}}` + "\n"))
	default:
		w.WriteHeader(404)
		_, _ = w.Write([]byte(`{"faultcode":"Client","faultstring":"no such thing","debuginfo":null,"code":"not_found"}`))
	}
}

func run(t *testing.T, f *fakeAPI, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	srv := httptest.NewServer(f)
	defer srv.Close()
	var out, errb bytes.Buffer
	r := &runner{stdout: &out, stderr: &errb, sleep: func(time.Duration) {}, http: srv.Client(),
		env: func(k string) string {
			if k == "ELB_ENDPOINT" {
				return srv.URL
			}
			return env[k]
		}}
	code := ExitOK
	if err := r.run(args); err != nil {
		code = ExitError
		if strings.HasPrefix(err.Error(), "usage") {
			code = ExitUsage
		}
		errb.WriteString(err.Error())
	}
	return code, out.String(), errb.String()
}

func TestCreateWithWaitFollowsTheLoadBalancerUntilActive(t *testing.T) {
	f := &fakeAPI{}
	code, out, errs := run(t, f, map[string]string{"ELB_TOKEN": "tok-env"}, "loadbalancer", "create", "--name", "web", "--tag", "a", "--tag", "b", "--l7-nodes", "2", "--wait")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "provisioning_status  PENDING_CREATE") {
		t.Fatalf("output:\n%s", out)
	}
	if !strings.Contains(errs, "PENDING_CREATE/OFFLINE") || !strings.Contains(errs, "ACTIVE") {
		t.Fatalf("progress:\n%s", errs)
	}
	if f.bodies[0] != `{"loadbalancer":{"l7_nodes":2,"name":"web","tags":["a","b"]}}` {
		t.Fatalf("body %s", f.bodies[0])
	}
	if !strings.HasSuffix(f.requests[0], "token=tok-env") {
		t.Fatalf("token not sent: %v", f.requests)
	}
}

func TestWaitShowsTheFailureReasonAndLog(t *testing.T) {
	code, _, errs := run(t, &fakeAPI{}, nil, "lb", "create", "--name", "bad", "--wait")
	if code != ExitError || !strings.Contains(errs, "no VIP left (step VIPAllocated)") || !strings.Contains(errs, "pool empty") {
		t.Fatalf("exit %d:\n%s", code, errs)
	}
}

func TestChildCreateWaitsForItsLoadBalancer(t *testing.T) {
	f := &fakeAPI{}
	code, _, errs := run(t, f, nil, "member", "create", "--pool", "p1", "--address", "10.0.0.1", "--port", "80", "--weight", "5", "--wait", "--token", "flagtok")
	if code != 0 || !strings.Contains(errs, "ACTIVE") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if f.bodies[0] != `{"member":{"address":"10.0.0.1","protocol_port":80,"weight":5}}` || !strings.HasSuffix(f.requests[0], "token=flagtok") {
		t.Fatalf("request %v %v", f.requests, f.bodies)
	}
}

func TestListShowStatusDeleteAndEvents(t *testing.T) {
	f := &fakeAPI{}
	code, out, _ := run(t, f, nil, "loadbalancer", "list", "--filter", "name=web")
	if code != 0 || !strings.Contains(out, "ID") || !strings.Contains(out, "lb2") || !strings.Contains(f.requests[0], "?name=web") {
		t.Fatalf("list %d:\n%s\n%v", code, out, f.requests)
	}
	code, out, _ = run(t, f, nil, "loadbalancer", "list", "-o", "json")
	var arr []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &arr) != nil || len(arr) != 2 {
		t.Fatalf("list json %d:\n%s", code, out)
	}
	code, out, _ = run(t, f, nil, "lb", "status", "lb1")
	if code != 0 || !strings.Contains(out, "member m1  10.0.0.1:80 ACTIVE/ERROR") || !strings.Contains(out, "node n1 127.0.1.1") {
		t.Fatalf("status %d:\n%s", code, out)
	}
	code, out, errs := run(t, f, nil, "loadbalancer", "failover", "lb1", "--wait")
	if code != 0 || !strings.Contains(out, "failover of loadbalancer lb1 accepted") {
		t.Fatalf("failover %d: %s %s", code, out, errs)
	}
	code, out, errs = run(t, f, nil, "loadbalancer", "delete", "lb1", "--cascade", "--wait")
	if code != 0 || !strings.Contains(out, "deleted") || !strings.Contains(errs, "DELETED") {
		t.Fatalf("delete %d: %s %s", code, out, errs)
	}
	if !slicesContain(f.requests, "DELETE /v2.0/lbaas/loadbalancers/lb1?cascade=true token=") {
		t.Fatalf("requests %v", f.requests)
	}
	code, out, _ = run(t, f, nil, "events", "--aggregate-id", "lb1", "--type", "ELBRequested")
	if code != 0 || !strings.Contains(out, "ELBRequested") || !strings.Contains(out, "loadbalancer/lb1") {
		t.Fatalf("events %d:\n%s", code, out)
	}
	code, out, _ = run(t, f, nil, "events", "-o", "json")
	if code != 0 || !strings.HasPrefix(out, `{"id":"e1"`) {
		t.Fatalf("events json %d:\n%s", code, out)
	}
	code, _, errs = run(t, f, nil, "pool", "show", "nope")
	if code != ExitError || !strings.Contains(errs, "no such thing (HTTP 404, not_found)") {
		t.Fatalf("show missing %d: %s", code, errs)
	}
}

func slicesContain(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"},
		{"loadbalancer"},
		{"loadbalancer", "explode"},
		{"listener", "create", "--loadbalancer", "x"},
		{"member", "list"},
		{"loadbalancer", "show"},
		{"loadbalancer", "list", "-o", "yaml"},
		{"loadbalancer", "update", "lb1"},
		{"listener", "create", "--loadbalancer", "x", "--protocol", "TCP", "--port", "eighty"},
		{"pool", "create", "--protocol", "TCP", "--lb-algorithm", "ROUND_ROBIN"},
	} {
		if code, _, errs := run(t, &fakeAPI{}, nil, args...); code != ExitUsage {
			t.Errorf("%v: exit %d (%s)", args, code, errs)
		}
	}
	var out, errb bytes.Buffer
	if code := Main([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "usage: elb") {
		t.Fatalf("help: %d %s", code, out.String())
	}
}
