package apigw_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/apigw"
	"github.com/elbcloud/elb/services/stats/statsapi"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/nats-io/nats.go"
)

// Tokens used by the tests.
const (
	adminToken   = "admin-token-0123456789"
	tokenA       = "token-project-a-member"
	tokenAReader = "token-project-a-reader"
	tokenB       = "token-project-b-member"
)

type env struct {
	t     testing.TB
	ctx   context.Context
	url   string
	gw    *apigw.Gateway
	store *eventstore.Store
	bus   *testkit.Bus
}

type fakeStats struct{}

func (fakeStats) GetMetricStatistics(_ context.Context, q statsapi.StatisticsQuery) (statsapi.StatisticsResult, error) {
	if q.Period <= 0 {
		return statsapi.StatisticsResult{}, statsapi.ErrInvalidQuery
	}
	v := 42.0
	return statsapi.StatisticsResult{Label: q.MetricName, Datapoints: []statsapi.Datapoint{{Timestamp: q.StartTime, Sum: &v, Maximum: &v}}}, nil
}

func (fakeStats) ListMetrics(context.Context, statsapi.ListMetricsQuery) (statsapi.ListMetricsResult, error) {
	return statsapi.ListMetricsResult{Metrics: []statsapi.Metric{{MetricName: "RequestCount",
		Dimensions: []statsapi.Dimension{{Name: "LoadBalancer", Value: "not-yours"}}}}}, nil
}

func (fakeStats) Top(_ context.Context, lb, kind string, start, end time.Time, _ int) (statsapi.TopResult, error) {
	return statsapi.TopResult{Kind: kind, Windows: []statsapi.TopWindow{{Start: start, End: end, Entries: []statsapi.TopEntry{{Key: "10.0.0.1", Requests: 7}}}}}, nil
}

func (fakeStats) LBStats(context.Context, string) (statsapi.LBStats, error) {
	return statsapi.LBStats{BytesIn: 100, BytesOut: 200, ActiveConnections: 3, TotalConnections: 9, RequestErrors: 1}, nil
}

// newEnv starts NATS, the gateway (projection + httptest server) and a fake
// provisioner, the test double of services/provisioner: it answers every
// config change with ELBActive, a delete with ELBDeleted, and fails load
// balancers named "fail-*"; load balancers named "hold-*" are left pending.
func newEnv(t testing.TB, mutate ...func(*apigw.Config)) *env {
	t.Helper()
	return newEnvWith(t, true, mutate...)
}

func newEnvWith(t testing.TB, provisioner bool, mutate ...func(*apigw.Config)) *env {
	t.Helper()
	bus := testkit.NATS(t)
	ctx := testkit.Context(t, 2*time.Minute)
	cfg := apigw.Config{JS: bus.JS, NC: bus.Conn, AdminToken: adminToken,
		Tokens: tokenA + ":proja:member:alice," + tokenAReader + ":proja:reader," + tokenB + ":projb:member:bob",
		Stats:  fakeStats{}, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, m := range mutate {
		m(&cfg)
	}
	gw, err := apigw.Build(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = gw.RunProjection(pctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-gw.CaughtUp():
	case <-ctx.Done():
		t.Fatal("projection never caught up")
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	store, err := eventstore.New(ctx, bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, url: srv.URL, gw: gw, store: store, bus: bus}
	if provisioner {
		e.fakeProvisioner(pctx)
	}
	return e
}

func (e *env) fakeProvisioner(ctx context.Context) {
	var wg sync.WaitGroup
	sub, err := e.bus.Conn.Subscribe(events.EventSubjectPrefix+events.AggLoadBalancer+".*", func(m *nats.Msg) {
		envs, err := events.UnmarshalCommitEnvelopes(m.Data)
		if err != nil {
			return
		}
		id := envs[0].AggregateID
		// A core subscriber may see the commit before a direct get does:
		// provision waits until the store shows at least this version.
		version, _ := strconv.ParseUint(m.Header.Get(eventstore.HeaderVersion), 10, 64)
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.provision(ctx, id, version)
		}()
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = sub.Unsubscribe(); wg.Wait() })
}

// provision brings one load balancer out of PENDING_*.
func (e *env) provision(ctx context.Context, id string, seen uint64) {
	for attempt := 0; attempt < 200 && ctx.Err() == nil; attempt++ {
		hist, version, err := e.store.Load(ctx, events.AggLoadBalancer, id)
		if err != nil {
			return
		}
		if version < seen {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		var name, status string
		for _, ev := range hist {
			switch d := ev.Data.(type) {
			case *events.ELBRequested:
				name, status = d.Spec.Name, "PENDING_CREATE"
			case *events.ELBUpdated:
				name = d.Spec.Name
			case *events.ELBActive, *events.ELBFailed:
				status = "DONE"
			case *events.ELBDeleteRequested:
				status = "PENDING_DELETE"
			case *events.ELBDeleted:
				status = "DELETED"
			default:
				if status == "DONE" {
					status = "PENDING_UPDATE"
				}
			}
		}
		var data any
		switch {
		case strings.HasPrefix(name, "hold-") || status == "DONE" || status == "DELETED":
			return
		case status == "PENDING_DELETE":
			data = &events.ELBDeleted{}
		case strings.HasPrefix(name, "fail-"):
			data = &events.ELBFailed{Reason: "fake nova failed the second VM", Step: "VMRequested",
				Log: []events.StepLogEntry{{Time: time.Now().UTC(), Step: "VIPAllocated", Message: "10.0.0.5"}, {Time: time.Now().UTC(), Step: "VMRequested", Message: "VM 2 failed"}}}
		default:
			data = &events.ELBActive{Version: version, VIP: "192.0.2.10", Nodes: []string{"node-1", "node-2"}}
		}
		ev := events.MustNew(events.AggLoadBalancer, id, data, events.Meta{Actor: "fake-provisioner", ProjectID: hist[0].ProjectID})
		if _, err := e.store.Append(ctx, events.AggLoadBalancer, id, version, "", ev); err == nil {
			return
		}
	}
}

// client returns a gophercloud service client with a fixed endpoint.
func (e *env) client(token string) *gophercloud.ServiceClient {
	pc := &gophercloud.ProviderClient{}
	pc.SetToken(token)
	return &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: e.url + "/", ResourceBase: e.url + "/v2.0/"}
}

// do sends a raw request and decodes a JSON answer into out (if not nil).
func (e *env) do(method, path, token string, body any, out any, hdr ...string) int {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequestWithContext(e.ctx, method, e.url+path, rd)
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	if resp.StatusCode >= 500 {
		e.t.Errorf("%s %s: server error %d: %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// lbStatus returns a load balancer's provisioning status ("" when gone).
func (e *env) lbStatus(id string) string {
	var out struct {
		LoadBalancer struct {
			ProvisioningStatus string `json:"provisioning_status"`
		} `json:"loadbalancer"`
	}
	for _, tok := range []string{adminToken, tokenA, tokenB} {
		if e.do("GET", "/v2.0/lbaas/loadbalancers/"+id, tok, nil, &out) == 200 {
			return out.LoadBalancer.ProvisioningStatus
		}
	}
	return ""
}

func (e *env) waitStatus(id, want string) {
	e.t.Helper()
	testkit.Eventually(e.t, 20*time.Second, func() bool { return e.lbStatus(id) == want }, "load balancer %s to be %s (is %s)", id, want, e.lbStatus(id))
}
