// Package domain is the alarm service's pure logic: rules ("metric ×
// threshold × N consecutive periods"), their evaluation, the deterministic
// alarm identity, silences, the built-in rule set from seed 001 and the rule
// file format. Nothing here does I/O or reads the wall clock.
package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/elbcloud/elb/events"
)

// ErrInvalidRule is wrapped by Rule.Validate.
var ErrInvalidRule = errors.New("invalid alarm rule")

// Kind says where a rule's observations come from.
type Kind string

// Rule kinds.
const (
	// KindMetric rules watch agent sample points; one period is one sample
	// interval of one series (metric, dimensions, reporting node).
	KindMetric Kind = "metric"
	// KindAgentAlive rules watch agent heartbeats; the value is the seconds
	// since a node's last heartbeat, evaluated on every tick.
	KindAgentAlive Kind = "agent_alive"
	// KindRealServer rules watch RealServerUnhealthy/Healthy events; the
	// value is 1 while a real server is unhealthy, 0 otherwise.
	KindRealServer Kind = "real_server"
)

// Comparison compares an observed value with the threshold.
type Comparison string

// Comparisons.
const (
	GreaterThan    Comparison = ">"
	GreaterOrEqual Comparison = ">="
	LessThan       Comparison = "<"
	LessOrEqual    Comparison = "<="
)

// Holds reports whether "v cmp threshold" is true.
func (c Comparison) Holds(v, threshold float64) bool {
	switch c {
	case GreaterThan:
		return v > threshold
	case GreaterOrEqual:
		return v >= threshold
	case LessThan:
		return v < threshold
	case LessOrEqual:
		return v <= threshold
	}
	return false
}

// Statistic is how a sample point becomes one value.
type Statistic string

// Statistics.
const (
	StatAverage Statistic = "avg"  // Sum/Count
	StatMaximum Statistic = "max"  // Max
	StatMinimum Statistic = "min"  // Min
	StatSum     Statistic = "sum"  // Sum
	StatRate    Statistic = "rate" // Sum per second of the interval
)

// Severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityMajor    = "major"
	SeverityCritical = "critical"
)

// Rule is one alarm rule. Zero Statistic, Periods and ResolvePeriods take
// the defaults (avg, 1, 1).
type Rule struct {
	Name      string     `json:"name"`
	Kind      Kind       `json:"kind"`
	Metric    string     `json:"metric,omitempty"`
	Statistic Statistic  `json:"statistic,omitempty"`
	Compare   Comparison `json:"comparison"`
	Threshold float64    `json:"threshold"`
	// Periods is how many consecutive periods must breach before the alarm
	// is raised; ResolvePeriods how many must not before it is resolved.
	Periods        int    `json:"periods,omitempty"`
	ResolvePeriods int    `json:"resolve_periods,omitempty"`
	Severity       string `json:"severity"`
	// Dimensions a sample point must carry ("*": any value).
	Dimensions map[string]string `json:"dimensions,omitempty"`
	// Without lists dimensions a sample point must not carry.
	Without     []string `json:"without,omitempty"`
	Description string   `json:"description,omitempty"`
	Disabled    bool     `json:"disabled,omitempty"`
}

// Normalized returns r with the defaults filled in.
func (r Rule) Normalized() Rule {
	if r.Statistic == "" {
		r.Statistic = StatAverage
	}
	if r.Periods <= 0 {
		r.Periods = 1
	}
	if r.ResolvePeriods <= 0 {
		r.ResolvePeriods = 1
	}
	if r.Severity == "" {
		r.Severity = SeverityWarning
	}
	return r
}

// Validate checks a rule as read from a file.
func (r Rule) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidRule, r.Name, fmt.Sprintf(format, args...))
	}
	if !events.ValidToken(r.Name) || len(r.Name) > 64 {
		return bad("name must be 1-64 characters without dots, wildcards or spaces")
	}
	switch r.Kind {
	case KindMetric:
		if !events.KnownMetric(r.Metric) {
			return bad("unknown metric %q", r.Metric)
		}
	case KindAgentAlive, KindRealServer:
		if r.Metric != "" {
			return bad("a %s rule has no metric", r.Kind)
		}
	default:
		return bad("unknown kind %q", r.Kind)
	}
	switch r.Statistic {
	case "", StatAverage, StatMaximum, StatMinimum, StatSum, StatRate:
	default:
		return bad("unknown statistic %q", r.Statistic)
	}
	switch r.Compare {
	case GreaterThan, GreaterOrEqual, LessThan, LessOrEqual:
	default:
		return bad("unknown comparison %q", r.Compare)
	}
	if math.IsNaN(r.Threshold) || math.IsInf(r.Threshold, 0) {
		return bad("threshold must be finite")
	}
	if r.Kind == KindAgentAlive && r.Threshold <= 0 {
		return bad("agent timeout (threshold, seconds) must be positive")
	}
	if r.Periods < 0 || r.Periods > 1000 || r.ResolvePeriods < 0 || r.ResolvePeriods > 1000 {
		return bad("periods must be between 1 and 1000")
	}
	switch r.Severity {
	case "", SeverityInfo, SeverityWarning, SeverityMajor, SeverityCritical:
	default:
		return bad("unknown severity %q", r.Severity)
	}
	for k := range r.Dimensions {
		if !events.ValidToken(k) {
			return bad("invalid dimension name %q", k)
		}
	}
	return nil
}

// Matches reports whether a sample point belongs to the rule.
func (r Rule) Matches(p events.SamplePoint) bool {
	if r.Kind != KindMetric || r.Disabled || p.Metric != r.Metric {
		return false
	}
	for k, want := range r.Dimensions {
		got, ok := p.Dimensions[k]
		if !ok || (want != "*" && want != got) {
			return false
		}
	}
	for _, k := range r.Without {
		if _, ok := p.Dimensions[k]; ok {
			return false
		}
	}
	return true
}

// Value turns a point into the rule's statistic; ok is false when the point
// has no such value (e.g. an average over no observations).
func (r Rule) Value(p events.SamplePoint, intervalSeconds float64) (float64, bool) {
	var v float64
	switch r.Statistic {
	case StatAverage, "":
		if p.Count <= 0 {
			return 0, false
		}
		v = p.Sum / p.Count
	case StatMaximum:
		v = p.Max
	case StatMinimum:
		v = p.Min
	case StatSum:
		v = p.Sum
	case StatRate:
		if intervalSeconds <= 0 {
			intervalSeconds = 10
		}
		v = p.Sum / intervalSeconds
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// Resource is the canonical name of what an alarm is about: the sorted
// dimensions, "k=v" joined by commas.
func Resource(dims map[string]string) string {
	keys := make([]string, 0, len(dims))
	for k := range dims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(dims[k])
	}
	return b.String()
}

// AlarmID is the alarm aggregate id of a rule on a resource: the same pair
// always maps to the same aggregate, so raising twice conflicts instead of
// duplicating.
func AlarmID(rule, resource string) string {
	h := sha256.Sum256([]byte(rule + "\x00" + resource))
	return "alm-" + hex.EncodeToString(h[:16])
}
