package apigw_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/httpx"
	"github.com/elbcloud/elb/services/apigw/app"
	"github.com/elbcloud/elb/services/apigw/app/apptest"
	"github.com/elbcloud/elb/services/apigw/auth"
	"github.com/elbcloud/elb/services/apigw/ports"
	"github.com/elbcloud/elb/services/apigw/readmodel"
)

const benchClients = 64

func httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: benchClients, MaxIdleConnsPerHost: benchClients}, Timeout: 30 * time.Second}
}

// hammer runs n requests from benchClients goroutines and returns each
// request's latency.
func hammer(b *testing.B, n int, req func(c *http.Client, i int) error) []time.Duration {
	b.Helper()
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	client := httpClient()
	for w := 0; w < benchClients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				start := time.Now()
				if err := req(client, i); err != nil {
					failed.Store(err)
					return
				}
				lat[i] = time.Since(start)
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return lat
}

func report(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkCreateLoadBalancer64Clients measures POST /loadbalancers end to
// end (decode, validate, load aggregate, append to JetStream, wait for the
// projection) with 64 concurrent clients against the in-process NATS server.
func BenchmarkCreateLoadBalancer64Clients(b *testing.B) {
	e := newEnvWith(b, false)
	body := []byte(`{"loadbalancer":{"name":"bench","vip_subnet_id":"s"}}`)
	n := max(b.N, benchClients)
	b.ResetTimer()
	start := time.Now()
	lat := hammer(b, n, func(c *http.Client, i int) error {
		req, _ := http.NewRequest("POST", e.url+"/v2.0/lbaas/loadbalancers", bytes.NewReader(body))
		req.Header.Set("X-Auth-Token", tokenA)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return fmt.Errorf("create: %d", resp.StatusCode)
		}
		return nil
	})
	report(b, lat, time.Since(start))
}

// bigModel builds a read model with n load balancers, each with a listener,
// a pool and two members, all ACTIVE, in projects of 100 load balancers.
func bigModel(n int) (*readmodel.Model, []string) {
	m := readmodel.New()
	var seq uint64
	ids := make([]string, n)
	apply := func(lb, project string, d any) {
		seq++
		env := events.MustNew(events.AggLoadBalancer, lb, d, events.Meta{ProjectID: project})
		env.Sequence = seq
		_ = m.Apply(events.Event{Envelope: env, Data: d})
	}
	for i := 0; i < n; i++ {
		lb := events.NewID()
		ids[i] = lb
		p := fmt.Sprintf("proj%03d", i/100)
		l, pool := events.NewID(), events.NewID()
		apply(lb, p, &events.ELBRequested{Spec: events.LoadBalancerSpec{Name: fmt.Sprintf("lb-%d", i), AdminStateUp: true, Tags: []string{"bench"}}})
		apply(lb, p, &events.ListenerCreated{ListenerID: l, Spec: events.ListenerSpec{LoadBalancerID: lb, Protocol: "HTTP", ProtocolPort: 80, ConnectionLimit: -1, AdminStateUp: true}})
		apply(lb, p, &events.PoolCreated{PoolID: pool, Spec: events.PoolSpec{LoadBalancerID: lb, ListenerID: l, Protocol: "HTTP", LBAlgorithm: "ROUND_ROBIN", AdminStateUp: true}})
		for j := 0; j < 2; j++ {
			apply(lb, p, &events.MemberAdded{MemberID: events.NewID(), Spec: events.MemberSpec{PoolID: pool, Address: fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256), ProtocolPort: 8080 + j, Weight: 1, AdminStateUp: true}})
		}
		apply(lb, p, &events.ELBActive{VIP: "192.0.2.1", Nodes: []string{"n1", "n2"}})
	}
	return m, ids
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkGetLoadBalancerWith10kInReadModel measures GET /loadbalancers/{id}
// over HTTP with 64 concurrent clients while the read model holds 10,000
// load balancer trees, and reports that model's heap size.
func BenchmarkGetLoadBalancerWith10kInReadModel(b *testing.B) {
	before := heapInUse()
	model, ids := bigModel(10000)
	after := heapInUse()

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := apptest.NewMemStore(model.Apply)
	svc := app.New(store, model, store, nil, app.Options{Logger: quiet})
	authn, _ := auth.New(auth.Config{AdminToken: adminToken})
	eng := httpx.NewEngine(httpx.Options{Service: "bench", Logger: quiet})
	ports.New(svc, authn, ports.Options{Logger: quiet}).Register(eng)
	srv := httptest.NewServer(eng)
	defer srv.Close()
	n := max(b.N, benchClients)
	b.ResetTimer()
	start := time.Now()
	lat := hammer(b, n, func(c *http.Client, i int) error {
		req, _ := http.NewRequest("GET", srv.URL+"/v2.0/lbaas/loadbalancers/"+ids[(i*7919)%len(ids)], nil)
		req.Header.Set("X-Auth-Token", adminToken)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("get: %d", resp.StatusCode)
		}
		return nil
	})
	report(b, lat, time.Since(start))
	b.ReportMetric(float64(after-before)/(1<<20), "model-MiB")
	b.ReportMetric(float64(after-before)/10000, "B/lb-tree")
	runtime.KeepAlive(model)
}

// BenchmarkListProjectLoadBalancersWith10k measures a tenant's list (100
// load balancers of 10,000) with a filter and a page size.
func BenchmarkListProjectLoadBalancersWith10k(b *testing.B) {
	model, _ := bigModel(10000)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := apptest.NewMemStore(model.Apply)
	svc := app.New(store, model, store, nil, app.Options{Logger: quiet})
	authn, _ := auth.New(auth.Config{TokensEnv: "bench-token-1:proj042:reader"})
	eng := httpx.NewEngine(httpx.Options{Service: "bench", Logger: quiet})
	ports.New(svc, authn, ports.Options{Logger: quiet}).Register(eng)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("GET", "/v2.0/lbaas/loadbalancers?limit=20&provisioning_status=ACTIVE", nil)
		req.Header.Set("X-Auth-Token", "bench-token-1")
		w := httptest.NewRecorder()
		eng.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("list: %d", w.Code)
		}
	}
}
