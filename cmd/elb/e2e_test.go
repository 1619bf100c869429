package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests build the real `elb` binary, run `elb up` on its
// defaults (embedded NATS, local agents as processes, userspace L4, builtin or
// nginx L7) and drive it through the public API as a user would.

func buildElb(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "elb")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build elb: %v", err)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type elbProc struct {
	cmd    *exec.Cmd
	api    string
	token  string
	mu     sync.Mutex
	output bytes.Buffer
	exited chan struct{}
}

func startElb(t *testing.T, bin, dataDir, api, token string) *elbProc {
	t.Helper()
	p := &elbProc{api: "http://" + api, token: token, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "up", "--data-dir", dataDir, "--api-addr", api, "--admin-token", token, "--log-level", "info")
	stdout, _ := p.cmd.StdoutPipe()
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	printed := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var all strings.Builder
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "admin token") {
				select {
				case printed <- all.String():
				default:
				}
			}
		}
	}()
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.output.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				_ = p.cmd.Process.Kill()
			}
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("elb up output:\n%s", p.output.String())
			p.mu.Unlock()
		}
	})
	select {
	case out := <-printed:
		if !strings.Contains(out, api) || !strings.Contains(out, token) {
			t.Fatalf("elb up did not print the API address and token:\n%s", out)
		}
	case <-p.exited:
		t.Fatalf("elb up exited early")
	case <-time.After(60 * time.Second):
		t.Fatalf("elb up printed nothing within 60 s")
	}
	eventually(t, 60*time.Second, func() bool {
		code, _ := p.do(t, "GET", "/readyz", nil)
		return code == 200
	}, "API ready")
	return p
}

func (p *elbProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("elb up did not stop within 30 s of SIGINT")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("elb up exited %d after SIGINT", code)
	}
}

func (p *elbProc) do(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.api+path, rd)
	req.Header.Set("X-Auth-Token", p.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"_raw": string(raw)}
	}
	return resp.StatusCode, out
}

func (p *elbProc) raw(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", p.api+path, nil)
	req.Header.Set("X-Auth-Token", p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (p *elbProc) create(t *testing.T, path, key string, body map[string]any) map[string]any {
	t.Helper()
	code, out := p.do(t, "POST", path, map[string]any{key: body})
	if code != 201 {
		t.Fatalf("POST %s = %d %v", path, code, out)
	}
	obj, _ := out[key].(map[string]any)
	if obj == nil || obj["id"] == nil {
		t.Fatalf("POST %s: no %s in %v", path, key, out)
	}
	return obj
}

func (p *elbProc) waitLB(t *testing.T, lbID, want string) map[string]any {
	t.Helper()
	var lb map[string]any
	eventually(t, 90*time.Second, func() bool {
		code, out := p.do(t, "GET", "/v2.0/lbaas/loadbalancers/"+lbID, nil)
		if code != 200 {
			return false
		}
		lb, _ = out["loadbalancer"].(map[string]any)
		st, _ := lb["provisioning_status"].(string)
		if st == "ERROR" && want != "ERROR" {
			t.Fatalf("load balancer went to ERROR: %v", lb)
		}
		return st == want
	}, "load balancer %s %s", lbID, want)
	return lb
}

func eventually(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countingBackend is a real server on loopback that counts what it serves.
type countingBackend struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits int
	name string
}

func newBackend(t *testing.T, name string) *countingBackend {
	b := &countingBackend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.hits++
		b.mu.Unlock()
		fmt.Fprint(w, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *countingBackend) port() int { return b.srv.Listener.Addr().(*net.TCPAddr).Port }

func (b *countingBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits
}

func TestE2EWholeFlowOnElbUpDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the whole system")
	}
	bin := buildElb(t)
	dataDir := t.TempDir()
	api := freeAddr(t)
	// Node processes outlive `elb up` by design (a restarted provisioner
	// adopts them and traffic keeps flowing); the test stops what is left.
	t.Cleanup(func() { stopNodes(t, dataDir) })
	p := startElb(t, bin, dataDir, api, "e2e-admin-token")

	// Create a load balancer and wait for ACTIVE.
	lb := p.create(t, "/v2.0/lbaas/loadbalancers", "loadbalancer", map[string]any{"name": "web"})
	lbID := lb["id"].(string)
	lb = p.waitLB(t, lbID, "ACTIVE")
	vip, _ := lb["vip_address"].(string)
	if !strings.HasPrefix(vip, "127.") {
		t.Fatalf("vip %q is not a loopback address", vip)
	}

	// Listener, pool, monitor, two members.
	_, port, _ := net.SplitHostPort(freeAddr(t))
	var listenerPort int
	_, _ = fmt.Sscan(port, &listenerPort)
	ls := p.create(t, "/v2.0/lbaas/listeners", "listener", map[string]any{
		"loadbalancer_id": lbID, "protocol": "HTTP", "protocol_port": listenerPort, "name": "http"})
	p.waitLB(t, lbID, "ACTIVE")
	pool := p.create(t, "/v2.0/lbaas/pools", "pool", map[string]any{
		"listener_id": ls["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "name": "pool"})
	p.waitLB(t, lbID, "ACTIVE")
	poolID := pool["id"].(string)
	p.create(t, "/v2.0/lbaas/healthmonitors", "healthmonitor", map[string]any{
		"pool_id": poolID, "type": "HTTP", "delay": 2, "timeout": 1, "max_retries": 1, "max_retries_down": 2, "url_path": "/"})
	p.waitLB(t, lbID, "ACTIVE")
	a, b := newBackend(t, "a"), newBackend(t, "b")
	for _, be := range []*countingBackend{a, b} {
		p.create(t, "/v2.0/lbaas/pools/"+poolID+"/members", "member", map[string]any{
			"address": "127.0.0.1", "protocol_port": be.port(), "name": be.name})
		p.waitLB(t, lbID, "ACTIVE")
	}

	// Traffic to the VIP spreads over both backends.
	url := fmt.Sprintf("http://%s/", net.JoinHostPort(vip, fmt.Sprint(listenerPort)))
	client := &http.Client{Timeout: 5 * time.Second}
	get := func() (string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		return string(body), nil
	}
	eventually(t, 30*time.Second, func() bool { _, err := get(); return err == nil }, "VIP %s answers", url)
	for i := 0; i < 40; i++ {
		if _, err := get(); err != nil {
			t.Fatalf("request %d through the VIP: %v", i, err)
		}
	}
	if a.count() < 10 || b.count() < 10 {
		t.Fatalf("traffic did not spread: a=%d b=%d", a.count(), b.count())
	}
	if n := len(nodeProcesses(t, dataDir)); n != 1 {
		t.Fatalf("%d tengine node processes for one load balancer, want 1", n)
	}

	// Kill a backend: it leaves rotation and clients see no errors after.
	b.srv.Close()
	eventually(t, 30*time.Second, func() bool {
		code, out := p.do(t, "GET", "/v2.0/lbaas/loadbalancers/"+lbID+"/status", nil)
		return code == 200 && strings.Contains(fmt.Sprint(out), "ERROR")
	}, "the killed member is reported down in the status tree")
	before := a.count()
	for i := 0; i < 20; i++ {
		if body, err := get(); err != nil || body != "a" {
			t.Fatalf("request %d after the kill: %q %v", i, body, err)
		}
	}
	if a.count()-before != 20 {
		t.Fatalf("backend a served %d of 20", a.count()-before)
	}

	// Metrics reach the metrics API.
	start := time.Now().Add(-10 * time.Minute).UTC().Format(time.RFC3339)
	end := time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)
	eventually(t, 60*time.Second, func() bool {
		code, out := p.do(t, "GET", "/v1/metrics/statistics?MetricName=RequestCount&LoadBalancer="+lbID+
			"&StartTime="+start+"&EndTime="+end+"&Period=60&Statistics=Sum", nil)
		if code != 200 {
			return false
		}
		dps, _ := out["Datapoints"].([]any)
		var sum float64
		for _, d := range dps {
			if m, ok := d.(map[string]any); ok {
				if v, ok := m["Sum"].(float64); ok {
					sum += v
				}
			}
		}
		return sum >= 60
	}, "RequestCount reaches the metrics API")

	// The events are in the audit log; a restart keeps them.
	audit := p.raw(t, "/v1/events?aggregate_id="+lbID)
	for _, typ := range []string{"ELBRequested", "VIPAllocated", "ELBActive", "ListenerCreated", "MemberAdded"} {
		if !strings.Contains(audit, `"`+typ+`"`) && !strings.Contains(audit, typ) {
			t.Errorf("audit log lacks %s", typ)
		}
	}
	p.stop(t)
	p = startElb(t, bin, dataDir, api, "e2e-admin-token")
	after := p.raw(t, "/v1/events?aggregate_id="+lbID)
	if strings.Count(after, "\n") < strings.Count(audit, "\n") {
		t.Fatalf("events lost across restart: %d lines before, %d after", strings.Count(audit, "\n"), strings.Count(after, "\n"))
	}
	p.waitLB(t, lbID, "ACTIVE")
	eventually(t, 30*time.Second, func() bool { body, err := get(); return err == nil && body == "a" }, "traffic after restart")

	// Cascade delete: the load balancer goes away and its VIP returns.
	code, out := p.do(t, "DELETE", "/v2.0/lbaas/loadbalancers/"+lbID+"?cascade=true", nil)
	if code != 204 {
		t.Fatalf("delete = %d %v", code, out)
	}
	eventually(t, 60*time.Second, func() bool {
		code, _ := p.do(t, "GET", "/v2.0/lbaas/loadbalancers/"+lbID, nil)
		return code == 404
	}, "deleted load balancer is gone")
	eventually(t, 30*time.Second, func() bool { _, err := get(); return err != nil }, "the VIP stops answering")
	eventually(t, 30*time.Second, func() bool { return len(nodeProcesses(t, dataDir)) == 0 },
		"every node process of the deleted load balancer is gone (left: %v)", nodeProcesses(t, dataDir))
	lb2 := p.create(t, "/v2.0/lbaas/loadbalancers", "loadbalancer", map[string]any{"name": "again"})
	if n := len(nodeProcesses(t, dataDir)); n > 1 {
		t.Errorf("%d node processes right after a create, want at most 1", n)
	}
	lb2 = p.waitLB(t, lb2["id"].(string), "ACTIVE")
	if lb2["vip_address"] != vip {
		t.Logf("new load balancer got %v (the released %s may be handed out later)", lb2["vip_address"], vip)
	}
}

// nodeProcesses lists the pids of local tengine nodes started for dataDir:
// the local compute driver marks them with ELB_LOCAL_DIR in the environment.
func nodeProcesses(t *testing.T, dataDir string) []int {
	t.Helper()
	abs, _ := filepath.Abs(dataDir)
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("ELB_LOCAL_DIR=")); ok && (string(v) == dataDir || string(v) == abs) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// stopNodes ends the local node processes of dataDir: SIGTERM (the agent
// stops its nginx), then SIGKILL for any that linger.
func stopNodes(t *testing.T, dataDir string) {
	for _, pid := range nodeProcesses(t, dataDir) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(nodeProcesses(t, dataDir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range nodeProcesses(t, dataDir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
