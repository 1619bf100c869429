package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/elbcloud/elb/agents/internal/natstest"
	"github.com/elbcloud/elb/events"
)

type fakeRole struct {
	mu       sync.Mutex
	versions []uint64
	fail     bool
}

func (f *fakeRole) Name() string   { return events.RoleTengine }
func (f *fakeRole) Driver() string { return "fake" }
func (f *fakeRole) Reconcile(_ context.Context, cfg *events.NodeConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("boom")
	}
	f.versions = append(f.versions, cfg.Version)
	return nil
}
func (f *fakeRole) Samples(time.Time) []events.SamplePoint {
	return []events.SamplePoint{{Metric: events.MetricRequestCount, Dimensions: map[string]string{events.DimLoadBalancer: "lb1"}, Count: 1, Sum: 3}}
}
func (f *fakeRole) last() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.versions) == 0 {
		return 0
	}
	return f.versions[len(f.versions)-1]
}

type inbox struct {
	mu   sync.Mutex
	msgs map[string][][]byte
}

func subscribe(t *testing.T, nc *nats.Conn, node string) *inbox {
	in := &inbox{msgs: map[string][][]byte{}}
	_, err := nc.Subscribe(events.AgentSubjectPrefix+node+".>", func(m *nats.Msg) {
		kind := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		in.mu.Lock()
		in.msgs[kind] = append(in.msgs[kind], m.Data)
		in.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func (in *inbox) applied() []events.AppliedReport {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []events.AppliedReport
	for _, b := range in.msgs[events.ReportApplied] {
		var r events.AppliedReport
		_ = json.Unmarshal(b, &r)
		out = append(out, r)
	}
	return out
}

func (in *inbox) count(kind string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs[kind])
}

func config(node string, version uint64, port int) *events.NodeConfig {
	return &events.NodeConfig{NodeID: node, Role: events.RoleTengine, Version: version, LoadBalancers: []events.LBConfig{{
		ID: "lb1", Listeners: []events.ListenerConfig{{ID: "l1", Protocol: "HTTP", Port: port}},
	}}}
}

func startAgent(t *testing.T, srv *natstest.Server, node, stateDir string, role Role) (*Agent, context.CancelFunc) {
	t.Helper()
	user, pass := AgentCredentials(natstest.Secret, node)
	a, err := New(Config{
		NodeID: node, StateDir: stateDir, User: user, Password: pass,
		HeartbeatInterval: 50 * time.Millisecond, SampleInterval: 100 * time.Millisecond, ResyncInterval: time.Second,
		NATSOptions: []nats.Option{srv.Option()},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx, role); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return a, stop
}

func TestAgentAppliesDesiredConfigWithinItsPermissionsAndRejectsInvalidOnes(t *testing.T) {
	srv := natstest.Start(t, "n1")
	admin := srv.Admin(t)
	kv := natstest.SetupBus(t, admin)
	in := subscribe(t, admin, "n1")
	natstest.PutConfig(t, kv, config("n1", 1, 8080), "n1")
	role := &fakeRole{}
	stateDir := t.TempDir()
	a, stop := startAgent(t, srv, "n1", stateDir, role)

	natstest.Eventually(t, 10*time.Second, func() bool { return role.last() == 1 })
	natstest.Eventually(t, 10*time.Second, func() bool {
		ap := in.applied()
		return len(ap) > 0 && ap[len(ap)-1].Version == 1 && ap[len(ap)-1].Error == "" && ap[len(ap)-1].LoadBalancers[0] == "lb1"
	})
	natstest.Eventually(t, 10*time.Second, func() bool { return in.count(events.ReportHeartbeat) > 0 && in.count(events.ReportSamples) > 0 })

	// Invalid: port out of range. Reported with an error, last good kept.
	natstest.PutConfig(t, kv, config("n1", 2, 70000), "n1")
	natstest.Eventually(t, 10*time.Second, func() bool {
		ap := in.applied()
		return len(ap) > 0 && ap[len(ap)-1].Version == 2 && strings.Contains(ap[len(ap)-1].Error, "out of range")
	})
	if a.Desired().Version != 1 {
		t.Fatalf("desired version %d, want last good 1", a.Desired().Version)
	}
	// A config for another node is rejected too.
	natstest.PutConfig(t, kv, config("n2", 3, 8080), "n1")
	natstest.Eventually(t, 10*time.Second, func() bool {
		ap := in.applied()
		return len(ap) > 0 && strings.Contains(ap[len(ap)-1].Error, "another node")
	})

	natstest.PutConfig(t, kv, config("n1", 4, 8081), "n1")
	natstest.Eventually(t, 10*time.Second, func() bool { return role.last() == 4 })
	natstest.Eventually(t, 10*time.Second, func() bool { return a.AppliedVersion() == 4 })

	a.ReportHealth(events.HealthReport{LoadBalancerID: "lb1", MemberID: "m1", Address: "127.0.0.1", Port: 1, Healthy: false})
	natstest.Eventually(t, 10*time.Second, func() bool { return in.count(events.ReportHealth) == 1 })

	// The applied reports landed in the report stream through JetStream.
	js, _ := admin.JetStream()
	si, err := js.StreamInfo(events.ReportStream)
	if err != nil || si.State.Msgs < 3 {
		t.Fatalf("report stream: %v %+v", err, si)
	}
	stop()

	// Restart while the bus is down: the persisted config is served.
	b, err := os.ReadFile(filepath.Join(stateDir, StateFile))
	if err != nil || !strings.Contains(string(b), `"version": 4`) {
		t.Fatalf("state file: %v %s", err, b)
	}
	srv.Stop()
	role2 := &fakeRole{}
	startAgent(t, srv, "n1", stateDir, role2)
	natstest.Eventually(t, 10*time.Second, func() bool { return role2.last() == 4 })
}

func TestAgentRetriesAFailedReconcileAndReportsTheError(t *testing.T) {
	srv := natstest.Start(t, "n1")
	admin := srv.Admin(t)
	kv := natstest.SetupBus(t, admin)
	in := subscribe(t, admin, "n1")
	natstest.PutConfig(t, kv, config("n1", 7, 8080), "n1")
	role := &fakeRole{fail: true}
	startAgent(t, srv, "n1", t.TempDir(), role)
	natstest.Eventually(t, 10*time.Second, func() bool {
		ap := in.applied()
		return len(ap) > 0 && ap[0].Version == 7 && ap[0].Error == "boom"
	})
	role.mu.Lock()
	role.fail = false
	role.mu.Unlock()
	natstest.Eventually(t, 10*time.Second, func() bool {
		ap := in.applied()
		return role.last() == 7 && len(ap) > 1 && ap[len(ap)-1].Error == ""
	})
}

func TestOutboxDropsOldestSamplesButKeepsReports(t *testing.T) {
	o := newOutbox(100, 2)
	o.push(outMsg{subject: "r1"}, false)
	for _, s := range []string{"s1", "s2", "s3"} {
		o.push(outMsg{subject: s}, true)
	}
	var got []string
	for {
		m, ok := o.pop()
		if !ok {
			break
		}
		got = append(got, m.subject)
	}
	if strings.Join(got, ",") != "r1,s2,s3" {
		t.Fatalf("got %v", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{NodeID: "a.b", StateDir: "x", Servers: []string{"nats://127.0.0.1:4222"}}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("err %v", err)
	}
	if _, err := New(Config{NodeID: "n1", Servers: []string{"x"}}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("err %v", err)
	}
}
