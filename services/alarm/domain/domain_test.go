package domain

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
)

func TestEvaluate(t *testing.T) {
	cpu := Rule{Name: "cpu", Kind: KindMetric, Metric: events.MetricNodeCPUUtilization, Compare: GreaterThan, Threshold: 90, Periods: 3}
	low := Rule{Name: "hosts", Kind: KindMetric, Metric: events.MetricHealthyHostCount, Compare: LessThan, Threshold: 1, Periods: 2, ResolvePeriods: 2}
	ge := Rule{Name: "ge", Kind: KindMetric, Metric: events.MetricNodeCPUUtilization, Compare: GreaterOrEqual, Threshold: 90}
	le := Rule{Name: "le", Kind: KindMetric, Metric: events.MetricNodeCPUUtilization, Compare: LessOrEqual, Threshold: 10}
	cases := []struct {
		name   string
		rule   Rule
		raised bool
		values []float64
		want   []Verdict
	}{
		{name: "three breaching periods raise on the third", rule: cpu,
			values: []float64{95, 95, 95}, want: []Verdict{Hold, Hold, Raise}},
		{name: "an interrupted run starts counting again", rule: cpu,
			values: []float64{95, 95, 50, 95, 95, 95}, want: []Verdict{Hold, Hold, Hold, Hold, Hold, Raise}},
		{name: "the threshold itself does not breach a strict comparison", rule: cpu,
			values: []float64{90, 90, 90}, want: []Verdict{Hold, Hold, Hold}},
		{name: "a raised alarm is not raised again", rule: cpu, raised: true,
			values: []float64{95, 95, 95, 95}, want: []Verdict{Hold, Hold, Hold, Hold}},
		{name: "a raised alarm resolves on the first clear period", rule: cpu, raised: true,
			values: []float64{95, 40}, want: []Verdict{Hold, Resolve}},
		{name: "below-threshold rules raise on low values", rule: low,
			values: []float64{0, 0}, want: []Verdict{Hold, Raise}},
		{name: "resolve periods need consecutive clear periods", rule: low, raised: true,
			values: []float64{2, 0, 2, 2}, want: []Verdict{Hold, Hold, Hold, Resolve}},
		{name: "greater or equal breaches at the threshold", rule: ge,
			values: []float64{90}, want: []Verdict{Raise}},
		{name: "less or equal breaches at the threshold", rule: le,
			values: []float64{11, 10}, want: []Verdict{Hold, Raise}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s Series
			for i, v := range c.values {
				var got Verdict
				s, got = Evaluate(c.rule, s, c.raised, v)
				if got != c.want[i] {
					t.Fatalf("period %d value %v: %v, want %v", i+1, v, got, c.want[i])
				}
			}
		})
	}
}

func TestRuleMatchesDimensionsAndComputesStatistics(t *testing.T) {
	r := DefaultRules()[0].Normalized() // node-cpu-high
	node := events.SamplePoint{Metric: events.MetricNodeCPUUtilization, Dimensions: map[string]string{events.DimNode: "n1"}, Count: 2, Sum: 150, Max: 99, Min: 51}
	if !r.Matches(node) {
		t.Fatal("node-level cpu point does not match node-cpu-high")
	}
	perLB := node
	perLB.Dimensions = map[string]string{events.DimNode: "n1", events.DimLoadBalancer: "lb"}
	if r.Matches(perLB) {
		t.Fatal("per-load-balancer point matches a node rule")
	}
	other := node
	other.Metric = events.MetricNodeMemoryUtilization
	if r.Matches(other) {
		t.Fatal("memory point matches the cpu rule")
	}
	for _, c := range []struct {
		stat Statistic
		want float64
	}{{StatAverage, 75}, {StatMaximum, 99}, {StatMinimum, 51}, {StatSum, 150}, {StatRate, 15}} {
		r.Statistic = c.stat
		if v, ok := r.Value(node, 10); !ok || v != c.want {
			t.Errorf("%s = %v (%v), want %v", c.stat, v, ok, c.want)
		}
	}
	r.Statistic = StatAverage
	if _, ok := r.Value(events.SamplePoint{Count: 0}, 10); ok {
		t.Error("average of no observations has a value")
	}
}

func TestAlarmIDIsDeterministicAndAValidToken(t *testing.T) {
	res := Resource(map[string]string{"Node": "n1", "LoadBalancer": "lb"})
	if res != "LoadBalancer=lb,Node=n1" {
		t.Fatalf("resource = %q", res)
	}
	a, b := AlarmID("r", res), AlarmID("r", res)
	if a != b || !events.ValidToken(a) {
		t.Fatalf("ids %q %q", a, b)
	}
	if AlarmID("r2", res) == a || AlarmID("r", "Node=n2") == a {
		t.Fatal("different rule or resource gives the same id")
	}
}

func TestSilences(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	until := now.Add(time.Hour)
	cases := []struct {
		name     string
		s        Silence
		rule     string
		resource string
		now      time.Time
		want     bool
	}{
		{"rule and resource match", Silence{Rule: "cpu", Resource: "Node=n1", Until: until}, "cpu", "Node=n1", now, true},
		{"other rule", Silence{Rule: "cpu", Resource: "Node=n1", Until: until}, "mem", "Node=n1", now, false},
		{"other resource", Silence{Rule: "cpu", Resource: "Node=n1", Until: until}, "cpu", "Node=n2", now, false},
		{"prefix", Silence{Resource: "Node=n*", Until: until}, "cpu", "Node=n2", now, true},
		{"every rule of a resource", Silence{Resource: "Node=n1", Until: until}, "mem", "Node=n1", now, true},
		{"expired", Silence{Rule: "cpu", Until: until}, "cpu", "Node=n1", until, false},
	}
	for _, c := range cases {
		if got := c.s.Matches(c.rule, c.resource, c.now); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestDefaultRulesAreValid(t *testing.T) {
	names := map[string]bool{}
	for _, r := range DefaultRules() {
		if err := r.Validate(); err != nil {
			t.Error(err)
		}
		if names[r.Name] {
			t.Errorf("duplicate rule %s", r.Name)
		}
		names[r.Name] = true
	}
	for _, n := range []string{RuleAgentAlive, RuleRealServerUnhealthy, "node-cpu-high", "node-memory-high", "node-tcp-close-wait-high", "elb-no-healthy-host"} {
		if !names[n] {
			t.Errorf("built-in rule %s missing", n)
		}
	}
}

func TestParseConfigMergesRulesAndRejectsBadInput(t *testing.T) {
	c, err := ParseConfig([]byte(`{
		"rules": [
			{"name": "node-cpu-high", "kind": "metric", "metric": "NodeCPUUtilization", "comparison": ">=", "threshold": 80, "periods": 2},
			{"name": "latency-high", "kind": "metric", "metric": "Latency", "statistic": "max", "comparison": ">", "threshold": 2, "severity": "major"}
		],
		"silences": [{"rule": "latency-high", "until": "2030-01-01T00:00:00Z"}],
		"webhooks": [{"url": "http://127.0.0.1:9/hook"}],
		"smtp": {"addr": "127.0.0.1:25", "from": "elb@example.org", "to": ["ops@example.org"]}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	rules := MergeRules(DefaultRules(), c)
	if len(rules) != len(DefaultRules())+1 {
		t.Fatalf("%d rules after merge", len(rules))
	}
	var cpu Rule
	for _, r := range rules {
		if r.Name == "node-cpu-high" {
			cpu = r
		}
	}
	if cpu.Threshold != 80 || cpu.Compare != GreaterOrEqual || cpu.Periods != 2 || cpu.Statistic != StatAverage {
		t.Fatalf("overridden rule = %+v", cpu)
	}
	c.ReplaceDefaults = true
	if n := len(MergeRules(DefaultRules(), c)); n != 2 {
		t.Fatalf("replace_defaults kept %d rules, want 2", n)
	}

	for name, bad := range map[string]string{
		"unknown field":      `{"rulez": []}`,
		"unknown metric":     `{"rules": [{"name": "x", "kind": "metric", "metric": "Nope", "comparison": ">"}]}`,
		"bad comparison":     `{"rules": [{"name": "x", "kind": "metric", "metric": "Latency", "comparison": "=="}]}`,
		"bad name":           `{"rules": [{"name": "a.b", "kind": "metric", "metric": "Latency", "comparison": ">"}]}`,
		"duplicate rule":     `{"rules": [{"name": "x", "kind": "real_server", "comparison": ">"}, {"name": "x", "kind": "real_server", "comparison": ">"}]}`,
		"zero agent timeout": `{"rules": [{"name": "x", "kind": "agent_alive", "comparison": ">", "threshold": 0}]}`,
		"webhook scheme":     `{"webhooks": [{"url": "file:///etc/passwd"}]}`,
		"smtp recipient":     `{"smtp": {"addr": "h:25", "from": "a@b", "to": []}}`,
		"silence no until":   `{"silences": [{"rule": "x"}]}`,
		"not json":           `rules: []`,
	} {
		if _, err := ParseConfig([]byte(bad)); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%s: empty error", name)
		}
	}
}

func TestDefaultRulesRoundTripThroughARuleFile(t *testing.T) {
	data, err := json.Marshal(Config{Rules: DefaultRules()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := MergeRules(nil, c); len(got) != len(DefaultRules()) {
		t.Fatalf("%d rules after round trip", len(got))
	}
}
