package alarm

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/alarm/domain"
	"github.com/elbcloud/elb/services/alarm/internal/smtptest"
	"github.com/prometheus/client_golang/prometheus"
)

// hook is a webhook receiver on loopback that records every notification.
type hook struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []domain.Notification
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n domain.Notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, n)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// for returns the notifications of one alarm, in order.
func (h *hook) forAlarm(id string) []domain.Notification {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []domain.Notification
	for _, n := range h.got {
		if n.AlarmID == id {
			out = append(out, n)
		}
	}
	return out
}

type harness struct {
	t     *testing.T
	ctx   context.Context
	bus   *testkit.Bus
	store *eventstore.Store
	hook  *hook
	reg   *prometheus.Registry
}

func start(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, ctx: testkit.Context(t, 60*time.Second), bus: testkit.NATS(t), hook: newHook(t), reg: prometheus.NewRegistry()}
	var err error
	if h.store, err = eventstore.New(h.ctx, h.bus.JS); err != nil {
		t.Fatal(err)
	}
	return h
}

// run starts the service; the returned func stops it and waits.
func (h *harness) run(cfg Config) func() {
	h.t.Helper()
	cfg.JS = h.bus.JS
	cfg.Registerer = h.reg
	if cfg.EvalInterval == 0 {
		cfg.EvalInterval = 20 * time.Millisecond
	}
	cfg.Webhooks = append(cfg.Webhooks, Webhook{URL: h.hook.srv.URL})
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}
	h.t.Cleanup(stop)
	// Evaluation ticks start once the service caught up and created its
	// durable consumers; samples published before that would be skipped
	// (new durables start at the end).
	h.settle()
	return stop
}

func (h *harness) publishCPU(node string, cpu float64) {
	h.t.Helper()
	b := events.SampleBatch{NodeID: node, Role: events.RoleTengine, Time: time.Now().UTC(), Interval: 10 * time.Second,
		Points: []events.SamplePoint{{Metric: events.MetricNodeCPUUtilization, Unit: "Percent",
			Dimensions: map[string]string{events.DimNode: node}, Count: 1, Sum: cpu, Min: cpu, Max: cpu}}}
	data, _ := json.Marshal(b)
	if _, err := h.bus.JS.Publish(h.ctx, events.AgentSubject(node, events.ReportSamples), data); err != nil {
		h.t.Fatal(err)
	}
}

// counter reads a counter (the first series of it) from the registry.
func (h *harness) counter(name string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// evaluated is how many sample batches the service evaluated.
func (h *harness) evaluated() float64 { return h.counter("elb_alarm_sample_batches_total") }

// settle waits until the running service completed three more evaluation
// ticks.
func (h *harness) settle() {
	h.t.Helper()
	from := h.counter("elb_alarm_evaluations_total")
	testkit.Eventually(h.t, 10*time.Second, func() bool { return h.counter("elb_alarm_evaluations_total") >= from+3 }, "three evaluation ticks")
}

func (h *harness) heartbeat(node string) {
	h.t.Helper()
	data, _ := json.Marshal(events.Heartbeat{NodeID: node, Role: events.RoleTengine, Time: time.Now().UTC()})
	if _, err := h.bus.JS.Publish(h.ctx, events.AgentSubject(node, events.ReportHeartbeat), data); err != nil {
		h.t.Fatal(err)
	}
}

// alarmEvents returns the types of an alarm aggregate's events.
func (h *harness) alarmEvents(id string) []string {
	h.t.Helper()
	evs, _, err := h.store.Load(h.ctx, events.AggAlarm, id)
	if err != nil {
		h.t.Fatal(err)
	}
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func (h *harness) waitAlarmEvents(id string, want ...string) {
	h.t.Helper()
	var got []string
	testkit.Eventually(h.t, 10*time.Second, func() bool { got = h.alarmEvents(id); return len(got) >= len(want) },
		"alarm %s has events %v", id, want)
	if len(got) != len(want) {
		h.t.Fatalf("alarm %s events %v, want %v", id, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			h.t.Fatalf("alarm %s events %v, want %v", id, got, want)
		}
	}
}

func (h *harness) appendLB(lb string, data any) {
	h.t.Helper()
	_, v, err := h.store.Load(h.ctx, events.AggLoadBalancer, lb)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.store.Append(h.ctx, events.AggLoadBalancer, lb, v, "", events.MustNew(events.AggLoadBalancer, lb, data, events.Meta{})); err != nil {
		h.t.Fatal(err)
	}
}

func TestCPUAboveThresholdForThreePeriodsRaisesOnceAndResolvesWithWebhookNotifications(t *testing.T) {
	h := start(t)
	stop := h.run(Config{})
	id := AlarmID("node-cpu-high", "Node=n1")

	// Two periods over the threshold are not enough; the third raises.
	h.publishCPU("n1", 97)
	h.publishCPU("n1", 97)
	h.publishCPU("n1", 97)
	h.waitAlarmEvents(id, events.TypeAlarmRaised)
	testkit.Eventually(t, 10*time.Second, func() bool { return len(h.hook.forAlarm(id)) == 1 }, "webhook got firing")
	// Still over: no second raise, even across a restart of the service.
	h.publishCPU("n1", 98)
	testkit.Eventually(t, 10*time.Second, func() bool { return h.evaluated() >= 4 }, "four batches evaluated")
	stop()
	h.run(Config{})
	h.publishCPU("n1", 99)
	h.publishCPU("n1", 99)
	h.publishCPU("n1", 99)
	// Back under: resolved.
	h.publishCPU("n1", 20)
	h.waitAlarmEvents(id, events.TypeAlarmRaised, events.TypeAlarmResolved)

	var got []domain.Notification
	testkit.Eventually(t, 10*time.Second, func() bool { got = h.hook.forAlarm(id); return len(got) >= 2 }, "webhook got firing and resolved")
	if len(got) != 2 || got[0].Status != domain.StatusFiring || got[1].Status != domain.StatusResolved {
		t.Fatalf("webhook notifications %+v, want firing then resolved", got)
	}
	if got[0].Rule != "node-cpu-high" || got[0].Value != 97 || got[0].Threshold != 90 || got[0].Severity != "warning" ||
		got[0].Dimensions[events.DimNode] != "n1" || got[0].EventID == "" {
		t.Fatalf("firing notification = %+v", got[0])
	}
	if got[1].Value != 20 || got[1].Severity != "warning" {
		t.Fatalf("resolved notification = %+v", got[1])
	}
}

func TestMailReceivesFiringAndResolved(t *testing.T) {
	h := start(t)
	relay := smtptest.Start(t)
	h.run(Config{SMTP: &SMTP{Addr: relay.Addr(), From: "elb@example.org", To: []string{"ops@example.org"}}})
	for _, v := range []float64{99, 99, 99, 5} {
		h.publishCPU("mailed", v)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return len(relay.Messages()) >= 2 }, "two mails")
	msgs := relay.Messages()
	if !strings.Contains(msgs[0], "Subject: [ELB FIRING] warning node-cpu-high on Node=mailed") ||
		!strings.Contains(msgs[1], "Subject: [ELB RESOLVED] warning node-cpu-high on Node=mailed") {
		t.Fatalf("mails:\n%s", strings.Join(msgs, "\n----\n"))
	}
}

func TestAgentWithoutHeartbeatIsAlarmedAndResolvedWhenItComesBack(t *testing.T) {
	h := start(t)
	h.run(Config{AgentTimeout: 2 * time.Second})
	id := AlarmID(domain.RuleAgentAlive, "Node=n2")
	for range 5 {
		h.heartbeat("n2")
		time.Sleep(100 * time.Millisecond) // an agent's heartbeat cadence, not a wait for a result
	}
	if ev := h.alarmEvents(id); len(ev) != 0 {
		t.Fatalf("alarm while heartbeats flow: %v", ev)
	}
	// Heartbeats stop: the alarm is raised after the timeout.
	h.waitAlarmEvents(id, events.TypeAlarmRaised)
	h.heartbeat("n2")
	h.waitAlarmEvents(id, events.TypeAlarmRaised, events.TypeAlarmResolved)
	testkit.Eventually(t, 10*time.Second, func() bool { return len(h.hook.forAlarm(id)) == 2 }, "webhook got both")
}

func TestDeletedNodeIsNotAlarmedAsDead(t *testing.T) {
	h := start(t)
	h.run(Config{AgentTimeout: 200 * time.Millisecond})
	id := AlarmID(domain.RuleAgentAlive, "Node=n9")
	h.heartbeat("n9")
	h.waitAlarmEvents(id, events.TypeAlarmRaised)
	h.appendLB("lb9", &events.VMDeleted{LoadBalancerID: "lb9", NodeID: "n9"})
	h.waitAlarmEvents(id, events.TypeAlarmRaised, events.TypeAlarmResolved)
}

func TestUnhealthyRealServerRaisesAndHealthyResolves(t *testing.T) {
	h := start(t)
	h.run(Config{})
	h.appendLB("lb1", &events.RealServerUnhealthy{LoadBalancerID: "lb1", PoolID: "p1", MemberID: "m1", Address: "127.0.0.1", Port: 8080,
		NodeID: "n1", Reason: "connection refused"})
	id := AlarmID(domain.RuleRealServerUnhealthy, "LoadBalancer=lb1,Member=m1,Pool=p1,Target=127.0.0.1:8080")
	h.waitAlarmEvents(id, events.TypeAlarmRaised)
	h.appendLB("lb1", &events.RealServerHealthy{LoadBalancerID: "lb1", PoolID: "p1", MemberID: "m1", Address: "127.0.0.1", Port: 8080, NodeID: "n1"})
	h.waitAlarmEvents(id, events.TypeAlarmRaised, events.TypeAlarmResolved)
	var got []domain.Notification
	testkit.Eventually(t, 10*time.Second, func() bool { got = h.hook.forAlarm(id); return len(got) == 2 }, "webhook got both")
	if got[0].Severity != domain.SeverityMajor || got[0].Dimensions["Target"] != "127.0.0.1:8080" {
		t.Fatalf("firing notification = %+v", got[0])
	}
}

func TestSilencedAlarmIsRecordedButNotNotified(t *testing.T) {
	h := start(t)
	h.run(Config{Silences: []Silence{{Rule: "node-cpu-high", Resource: "Node=quiet", Until: time.Now().Add(time.Hour)}}})
	quiet, loud := AlarmID("node-cpu-high", "Node=quiet"), AlarmID("node-cpu-high", "Node=loud")
	for range 3 {
		h.publishCPU("quiet", 99)
	}
	h.waitAlarmEvents(quiet, events.TypeAlarmRaised)
	for range 3 {
		h.publishCPU("loud", 99)
	}
	h.waitAlarmEvents(loud, events.TypeAlarmRaised)
	// Notifications go out in event order: once the loud one arrived, the
	// quiet one would have too.
	testkit.Eventually(t, 10*time.Second, func() bool { return len(h.hook.forAlarm(loud)) == 1 }, "loud alarm notified")
	if n := h.hook.forAlarm(quiet); len(n) != 0 {
		t.Fatalf("silenced alarm notified: %+v", n)
	}
}

func TestRunRejectsABadRulesFile(t *testing.T) {
	h := start(t)
	path := t.TempDir() + "/rules.json"
	if err := os.WriteFile(path, []byte(`{"rules": [{"name": "x", "kind": "metric", "metric": "NoSuchMetric", "comparison": ">"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(h.ctx, Config{JS: h.bus.JS, RulesFile: path})
	if err == nil {
		t.Fatal("bad rules file accepted")
	}
	t.Logf("error (as an operator sees it): %v", err)
}

func (h *harness) healthReport(node string, healthy bool) {
	h.t.Helper()
	data, _ := json.Marshal(events.HealthReport{NodeID: node, Time: time.Now().UTC(), LoadBalancerID: "lb7", PoolID: "p7", MemberID: "m7",
		Address: "127.0.0.7", Port: 80, Healthy: healthy, Reason: "timeout"})
	if _, err := h.bus.JS.Publish(h.ctx, events.AgentSubject(node, events.ReportHealth), data); err != nil {
		h.t.Fatal(err)
	}
}

func TestAgentHealthReportsDriveTheRealServerAlarmAcrossARestart(t *testing.T) {
	h := start(t)
	stop := h.run(Config{})
	id := AlarmID(domain.RuleRealServerUnhealthy, "LoadBalancer=lb7,Member=m7,Pool=p7,Target=127.0.0.7:80")
	h.healthReport("n1", false)
	h.healthReport("n2", true)
	h.waitAlarmEvents(id, events.TypeAlarmRaised)
	// After a restart the report history is replayed: the server is still
	// unhealthy, so the alarm is neither resolved nor raised again.
	stop()
	h.run(Config{})
	h.healthReport("n2", true)
	h.settle()
	if got := h.alarmEvents(id); len(got) != 1 {
		t.Fatalf("after restart alarm events %v, want still just the raise", got)
	}
	// Healthy as seen from every node that checks it: resolved.
	h.healthReport("n1", true)
	h.waitAlarmEvents(id, events.TypeAlarmRaised, events.TypeAlarmResolved)
}
