package domain

import (
	"fmt"
	"time"
)

// Action is what a decision does.
type Action int

// Actions.
const (
	None Action = iota
	ScaleOut
	ScaleIn
)

func (a Action) String() string {
	switch a {
	case ScaleOut:
		return "scale_out"
	case ScaleIn:
		return "scale_in"
	}
	return "none"
}

// Input is everything Decide looks at.
type Input struct {
	Now time.Time
	// Desired is the node count last asked for.
	Desired int
	// Serving are the nodes carrying traffic and not draining, in order.
	Serving []string
	// LastScale is when the last decision was taken (zero: never).
	LastScale time.Time
	Policy    Policy
	Load      Load
}

// Decision is Decide's verdict. For None, Reason says why nothing happens.
type Decision struct {
	Action   Action
	From, To int
	// Nodes are the nodes to drain on a scale-in.
	Nodes  []string
	Reason string
}

// hysteresis keeps a scale-in from causing the next scale-out: the load
// spread over one node less must stay below this share of the scale-out
// thresholds.
const hysteresis = 0.8

// Decide is the scaling policy. In order:
//   - below the floor (min, pre-warm): scale out to it at once;
//   - above max: scale in by one node at once;
//   - within the cooldown, while earlier capacity is still coming up, or
//     with too few samples: nothing;
//   - under load (CPU or connections per node at the scale-out threshold):
//     +StepPercent, rounded up, at least one node, at most max;
//   - idle for IdleSpan (every figure at or below the scale-in thresholds,
//     and the load on one node less still well below scale-out): one node
//     less, draining the least loaded node, never below the floor.
func Decide(in Input) Decision {
	p := in.Policy
	floor := p.floor()
	cur := in.Desired
	none := func(format string, args ...any) Decision {
		return Decision{Action: None, From: cur, To: cur, Reason: fmt.Sprintf(format, args...)}
	}
	if cur < floor {
		reason := fmt.Sprintf("below minimum of %d node(s)", p.Min)
		if p.PreWarm > p.Min {
			reason = fmt.Sprintf("pre-warm to %d node(s)", p.PreWarm)
		}
		return Decision{Action: ScaleOut, From: cur, To: floor, Reason: reason}
	}
	if cur > p.Max {
		d := Decision{Action: ScaleIn, From: cur, To: cur - 1, Reason: fmt.Sprintf("above maximum of %d node(s)", p.Max)}
		// With capacity still coming up, name no node: the provisioner then
		// retires the newest, which are not serving yet.
		if len(in.Serving) >= cur && len(in.Serving) > 0 {
			d.Nodes = []string{pickDrain(in.Serving, in.Load)}
		}
		return d
	}
	if !in.LastScale.IsZero() && in.Now.Sub(in.LastScale) < p.Cooldown {
		return none("cooldown until %s", in.LastScale.Add(p.Cooldown).UTC().Format(time.RFC3339))
	}
	if len(in.Serving) < cur {
		return none("waiting for capacity: %d of %d node(s) serving", len(in.Serving), cur)
	}
	l := in.Load
	if l.Samples < p.MinSamples {
		return none("%d sample(s) in window, need %d", l.Samples, p.MinSamples)
	}
	cpuHigh := l.HasCPU && l.CPU >= p.ScaleOutCPU
	connsHigh := l.HasConns && l.ConnsPerNode >= p.ScaleOutConns
	if cpuHigh || connsHigh {
		if cur >= p.Max {
			return none("under load but at maximum of %d node(s)", p.Max)
		}
		return Decision{Action: ScaleOut, From: cur, To: p.StepOut(cur), Reason: loadReason("under load", l, p.Window)}
	}
	if cur <= floor {
		return none("at minimum")
	}
	if !l.HasCPU && !l.HasConns {
		return none("no load figures")
	}
	idle := (!l.HasCPU || l.CPU <= p.ScaleInCPU) && (!l.HasConns || l.ConnsPerNode <= p.ScaleInConns)
	if !idle {
		return none("load within bounds")
	}
	if l.Span < p.IdleSpan {
		return none("idle for %s, need %s", l.Span, p.IdleSpan)
	}
	n := float64(len(in.Serving))
	if n < 2 {
		return none("nothing to drain")
	}
	spread := n / (n - 1)
	if (l.HasCPU && l.CPU*spread >= p.ScaleOutCPU*hysteresis) ||
		(l.HasConns && l.ConnsPerNode*spread >= p.ScaleOutConns*hysteresis) {
		return none("idle but one node less would be near the scale-out threshold")
	}
	return Decision{Action: ScaleIn, From: cur, To: cur - 1, Nodes: []string{pickDrain(in.Serving, l)},
		Reason: loadReason("idle", l, p.Window)}
}

// pickDrain chooses the node with the fewest active connections; among
// equals (or without figures) the newest, which has the least warm state.
func pickDrain(serving []string, l Load) string {
	best := serving[len(serving)-1]
	bestConns, bestKnown := l.PerNodeConns[best]
	for i := len(serving) - 2; i >= 0; i-- {
		c, ok := l.PerNodeConns[serving[i]]
		if ok && (!bestKnown || c < bestConns) {
			best, bestConns, bestKnown = serving[i], c, true
		}
	}
	return best
}

func loadReason(what string, l Load, window time.Duration) string {
	s := what + " over " + window.String() + ":"
	if l.HasCPU {
		s += fmt.Sprintf(" cpu %.1f%%", l.CPU)
	}
	if l.HasConns {
		s += fmt.Sprintf(" connections/node %.0f", l.ConnsPerNode)
	}
	return s + fmt.Sprintf(" (%d samples)", l.Samples)
}
