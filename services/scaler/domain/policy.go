// Package domain is the scaler's pure logic: the capacity policy of a load
// balancer, its scaling state folded from the event stream, the sliding
// window of load samples, and Decide, which turns them into a scaling
// decision. Nothing here does I/O or reads the wall clock.
package domain

import (
	"errors"
	"fmt"
	"time"

	"github.com/elbcloud/elb/events"
)

// ErrInvalidPolicy is wrapped by Validate for a policy that cannot be used.
var ErrInvalidPolicy = errors.New("invalid scaling policy")

// Policy is one load balancer's capacity policy.
type Policy struct {
	// Min and Max bound the number of tengine nodes (Min ≥ 1, Max ≥ Min).
	Min, Max int
	// PreWarm, when set, holds at least this many nodes until a new policy
	// clears it (capacity booked ahead of an expected peak).
	PreWarm int
	// Cooldown is the least time between two load-driven decisions.
	Cooldown time.Duration
	// Window is how far back load samples count.
	Window time.Duration
	// StepPercent is how much capacity one scale-out adds (rounded up, at
	// least one node).
	StepPercent int
	// ScaleOutCPU and ScaleOutConns (average active connections per node)
	// mark a load balancer as under load when either is reached.
	ScaleOutCPU   float64
	ScaleOutConns float64
	// ScaleInCPU and ScaleInConns mark it idle when every known figure is at
	// or below them.
	ScaleInCPU   float64
	ScaleInConns float64
	// MinSamples is how many samples the window needs before any load-driven
	// decision.
	MinSamples int
	// IdleSpan is how long the window's samples must span before a scale-in:
	// idleness is only believed after it has lasted.
	IdleSpan time.Duration
}

// DefaultPolicy is the policy of a load balancer that set nothing: +20%
// every five minutes while the average CPU reaches 70% or a node holds
// 10000 connections; one node less after five quiet minutes.
func DefaultPolicy() Policy {
	return Policy{
		Min:           1,
		Max:           20,
		Cooldown:      5 * time.Minute,
		Window:        5 * time.Minute,
		StepPercent:   20,
		ScaleOutCPU:   70,
		ScaleOutConns: 10000,
		ScaleInCPU:    25,
		ScaleInConns:  1000,
		MinSamples:    3,
		IdleSpan:      4 * time.Minute,
	}
}

// Validate checks a policy.
func (p Policy) Validate() error {
	switch {
	case p.Min < 1:
		return fmt.Errorf("%w: min %d < 1", ErrInvalidPolicy, p.Min)
	case p.Max < p.Min:
		return fmt.Errorf("%w: max %d < min %d", ErrInvalidPolicy, p.Max, p.Min)
	case p.PreWarm < 0:
		return fmt.Errorf("%w: pre-warm %d < 0", ErrInvalidPolicy, p.PreWarm)
	case p.Cooldown < 0 || p.Window <= 0 || p.IdleSpan < 0:
		return fmt.Errorf("%w: cooldown, window and idle span must be positive", ErrInvalidPolicy)
	case p.StepPercent < 1:
		return fmt.Errorf("%w: step %d%% < 1%%", ErrInvalidPolicy, p.StepPercent)
	case p.ScaleInCPU >= p.ScaleOutCPU || p.ScaleInConns >= p.ScaleOutConns:
		return fmt.Errorf("%w: scale-in thresholds must be below scale-out thresholds", ErrInvalidPolicy)
	case p.MinSamples < 1:
		return fmt.Errorf("%w: min samples %d < 1", ErrInvalidPolicy, p.MinSamples)
	}
	return nil
}

// Override is what a load balancer's own settings change in the defaults:
// the bounds of its spec, then the last ScalePolicySet (zero keeps).
type Override struct {
	SpecMin, SpecMax int
	Set              *events.ScalePolicySet
}

// Effective applies o to the defaults. A result that would be invalid
// (e.g. max below min) is repaired towards the larger bound.
func (p Policy) Effective(o Override) Policy {
	if o.SpecMin > 0 {
		p.Min = o.SpecMin
	}
	if o.SpecMax > 0 {
		p.Max = o.SpecMax
	}
	if s := o.Set; s != nil {
		if s.Min > 0 {
			p.Min = s.Min
		}
		if s.Max > 0 {
			p.Max = s.Max
		}
		if s.CooldownSeconds > 0 {
			p.Cooldown = time.Duration(s.CooldownSeconds) * time.Second
		}
		p.PreWarm = max(s.PreWarm, 0)
	}
	p.Min = max(p.Min, 1)
	p.Max = max(p.Max, p.Min)
	return p
}

// floor is the least node count the policy allows right now.
func (p Policy) floor() int { return min(max(p.Min, p.PreWarm, 1), p.Max) }

// StepOut is the node count one scale-out from n reaches: +StepPercent
// rounded up, at least one node, never above max.
func (p Policy) StepOut(n int) int {
	step := (n*p.StepPercent + 99) / 100
	return min(n+max(step, 1), p.Max)
}
