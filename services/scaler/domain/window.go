package domain

import (
	"math"
	"sort"
	"time"

	"github.com/elbcloud/elb/events"
)

// maxSamplesPerNode bounds a node's window (an agent reporting every second
// for ten minutes).
const maxSamplesPerNode = 600

// Sample is one node's load over one agent interval.
type Sample struct {
	Time     time.Time
	CPU      float64 // percent
	HasCPU   bool
	Conns    float64 // active connections on the node
	HasConns bool
}

// SampleFromBatch extracts the node-level load figures of a batch: the
// node's CPU and its total active connections (the point whose only
// dimension is the node). ok is false when the batch carries neither.
func SampleFromBatch(b events.SampleBatch) (s Sample, ok bool) {
	s.Time = b.Time
	for _, p := range b.Points {
		if p.Count <= 0 || !finite(p.Sum) {
			continue
		}
		nodeOnly := len(p.Dimensions) == 0 || (len(p.Dimensions) == 1 && p.Dimensions[events.DimNode] != "")
		if !nodeOnly {
			continue
		}
		v := p.Sum / p.Count
		switch p.Metric {
		case events.MetricNodeCPUUtilization:
			if v >= 0 && v <= 100 {
				s.CPU, s.HasCPU = v, true
			}
		case events.MetricActiveConnectionCount:
			if v >= 0 {
				s.Conns, s.HasConns = v, true
			}
		}
	}
	return s, s.HasCPU || s.HasConns
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Load is a load balancer's load over the window.
type Load struct {
	// Samples counts the samples in the window over all nodes.
	Samples int
	// CPU is the average CPU percent over every sample with a CPU figure.
	CPU    float64
	HasCPU bool
	// ConnsPerNode is the average over nodes of each node's average active
	// connections.
	ConnsPerNode float64
	HasConns     bool
	// PerNodeConns is each node's average (nodes without figures absent).
	PerNodeConns map[string]float64
	// Span is the time between the oldest and the newest sample.
	Span time.Duration
}

// Window keeps the recent samples of every node. Not safe for concurrent
// use; the app guards it.
type Window struct {
	nodes map[string][]Sample
}

// NewWindow returns an empty window.
func NewWindow() *Window { return &Window{nodes: map[string][]Sample{}} }

// Add records a node's sample, keeping each node's samples in time order.
func (w *Window) Add(node string, s Sample) {
	ss := w.nodes[node]
	i := sort.Search(len(ss), func(i int) bool { return ss[i].Time.After(s.Time) })
	ss = append(ss, Sample{})
	copy(ss[i+1:], ss[i:])
	ss[i] = s
	if len(ss) > maxSamplesPerNode {
		ss = ss[len(ss)-maxSamplesPerNode:]
	}
	w.nodes[node] = ss
}

// Prune drops samples older than cutoff and nodes left without samples.
func (w *Window) Prune(cutoff time.Time) {
	for n, ss := range w.nodes {
		i := sort.Search(len(ss), func(i int) bool { return !ss[i].Time.Before(cutoff) })
		if i == len(ss) {
			delete(w.nodes, n)
			continue
		}
		w.nodes[n] = ss[i:]
	}
}

// Forget drops a node.
func (w *Window) Forget(node string) { delete(w.nodes, node) }

// Len is the number of nodes with samples.
func (w *Window) Len() int { return len(w.nodes) }

// Load aggregates the samples of nodes taken in (now-window, now].
func (w *Window) Load(now time.Time, window time.Duration, nodes []string) Load {
	l := Load{PerNodeConns: map[string]float64{}}
	from := now.Add(-window)
	var cpuSum float64
	var cpuN int
	var oldest, newest time.Time
	var connsSum float64
	for _, n := range nodes {
		var nc float64
		var ncN int
		for _, s := range w.nodes[n] {
			if !s.Time.After(from) || s.Time.After(now) {
				continue
			}
			l.Samples++
			if oldest.IsZero() || s.Time.Before(oldest) {
				oldest = s.Time
			}
			if s.Time.After(newest) {
				newest = s.Time
			}
			if s.HasCPU {
				cpuSum += s.CPU
				cpuN++
			}
			if s.HasConns {
				nc += s.Conns
				ncN++
			}
		}
		if ncN > 0 {
			l.PerNodeConns[n] = nc / float64(ncN)
			connsSum += nc / float64(ncN)
		}
	}
	if cpuN > 0 {
		l.CPU, l.HasCPU = cpuSum/float64(cpuN), true
	}
	if len(l.PerNodeConns) > 0 {
		l.ConnsPerNode, l.HasConns = connsSum/float64(len(l.PerNodeConns)), true
	}
	if l.Samples > 0 {
		l.Span = newest.Sub(oldest)
	}
	return l
}
