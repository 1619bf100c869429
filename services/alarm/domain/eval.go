package domain

import (
	"strings"
	"time"
)

// Series is the consecutive-period state of one rule on one resource.
type Series struct {
	Breaching int // consecutive breaching periods
	Clear     int // consecutive non-breaching periods
}

// Verdict is what one evaluation asks for.
type Verdict int

// Verdicts.
const (
	Hold Verdict = iota
	Raise
	Resolve
)

func (v Verdict) String() string {
	switch v {
	case Raise:
		return "raise"
	case Resolve:
		return "resolve"
	}
	return "hold"
}

// Evaluate folds one period's value into the series and says whether the
// alarm must be raised (Periods consecutive breaches while not raised) or
// resolved (ResolvePeriods consecutive clear periods while raised). A
// raised alarm is never raised again: that is the dedup.
func Evaluate(r Rule, s Series, raised bool, value float64) (Series, Verdict) {
	r = r.Normalized()
	if r.Compare.Holds(value, r.Threshold) {
		s.Breaching++
		s.Clear = 0
	} else {
		s.Clear++
		s.Breaching = 0
	}
	switch {
	case !raised && s.Breaching >= r.Periods:
		return s, Raise
	case raised && s.Clear >= r.ResolvePeriods:
		return s, Resolve
	}
	return s, Hold
}

// Silence suppresses the notifications of matching alarms until a time.
// The alarms themselves are still raised and resolved (the audit trail is
// complete); only webhook and mail stay quiet.
type Silence struct {
	// Rule matches one rule; empty matches every rule.
	Rule string `json:"rule,omitempty"`
	// Resource matches one resource exactly, or every resource starting
	// with it when it ends in "*"; empty matches every resource.
	Resource string    `json:"resource,omitempty"`
	Until    time.Time `json:"until"`
	Comment  string    `json:"comment,omitempty"`
}

// Matches reports whether the silence covers rule on resource at now.
func (s Silence) Matches(rule, resource string, now time.Time) bool {
	if !now.Before(s.Until) {
		return false
	}
	if s.Rule != "" && s.Rule != rule {
		return false
	}
	switch {
	case s.Resource == "":
		return true
	case strings.HasSuffix(s.Resource, "*"):
		return strings.HasPrefix(resource, strings.TrimSuffix(s.Resource, "*"))
	}
	return s.Resource == resource
}

// Silenced reports whether any silence covers rule on resource at now.
func Silenced(silences []Silence, rule, resource string, now time.Time) bool {
	for _, s := range silences {
		if s.Matches(rule, resource, now) {
			return true
		}
	}
	return false
}
