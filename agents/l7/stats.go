package l7

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
)

// Request is one finished request as a driver saw it.
type Request struct {
	Listener string
	ClientIP string
	URL      string
	Status   int
	// UpstreamStatus is the member's status, 0 when no member answered (the
	// load balancer produced the response itself).
	UpstreamStatus int
	// ConnectErrors counts failed connection attempts to members.
	ConnectErrors int
	// Spillover is set when the request was rejected by the connection limit.
	Spillover bool
	Duration  time.Duration
	BytesIn   int64
	BytesOut  int64
}

// ListenerStats are one listener's aggregates over an interval.
type ListenerStats struct {
	Requests                       int
	LatencySum, LatencyMin, LatMax float64 // seconds
	Latencies                      []float64
	ELB4xx, ELB5xx                 int
	Backend                        [4]int // 2xx..5xx
	BackendConnErrors              int
	Spillover                      int
	BytesIn, BytesOut              int64
	ClientIPs                      map[string]int
	URLs                           map[string]int
	// ActiveConnections is a gauge, -1 when unknown.
	ActiveConnections int
}

// Snapshot is a driver's statistics since the previous call.
type Snapshot struct {
	Listeners map[string]*ListenerStats
	// NodeActiveConnections is the node-wide count (nginx stub_status), -1
	// when unknown.
	NodeActiveConnections int
}

// maxDistinct bounds the per-interval client IP and URL maps.
const maxDistinct = 10000

// Accumulator aggregates requests per listener until Take. Drivers share it.
type Accumulator struct {
	mu   sync.Mutex
	cur  map[string]*ListenerStats
	seen map[string]int // latency observations per listener (reservoir)
}

// NewAccumulator returns an empty accumulator.
func NewAccumulator() *Accumulator {
	return &Accumulator{cur: map[string]*ListenerStats{}, seen: map[string]int{}}
}

// Record adds one request.
func (a *Accumulator) Record(r Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.get(r.Listener)
	lat := r.Duration.Seconds()
	if s.Requests == 0 || lat < s.LatencyMin {
		s.LatencyMin = lat
	}
	if lat > s.LatMax {
		s.LatMax = lat
	}
	s.Requests++
	s.LatencySum += lat
	// Reservoir sampling keeps at most MaxSampleValues raw latencies.
	n := a.seen[r.Listener]
	a.seen[r.Listener] = n + 1
	if len(s.Latencies) < events.MaxSampleValues {
		s.Latencies = append(s.Latencies, lat)
	} else if j := rand.IntN(n + 1); j < events.MaxSampleValues {
		s.Latencies[j] = lat
	}
	switch {
	case r.UpstreamStatus >= 200 && r.UpstreamStatus < 600:
		s.Backend[r.UpstreamStatus/100-2]++
	case r.Status >= 400 && r.Status < 500:
		s.ELB4xx++
	case r.Status >= 500:
		s.ELB5xx++
	}
	s.BackendConnErrors += r.ConnectErrors
	if r.Spillover {
		s.Spillover++
	}
	s.BytesIn += r.BytesIn
	s.BytesOut += r.BytesOut
	bump(s.ClientIPs, r.ClientIP)
	bump(s.URLs, r.URL)
}

func bump(m map[string]int, k string) {
	if k == "" {
		return
	}
	if _, ok := m[k]; ok || len(m) < maxDistinct {
		m[k]++
	}
}

// AddConnectErrors counts failed connection attempts to members that are not
// tied to one recorded request.
func (a *Accumulator) AddConnectErrors(listener string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.get(listener).BackendConnErrors += n
}

func (a *Accumulator) get(listener string) *ListenerStats {
	s := a.cur[listener]
	if s == nil {
		s = &ListenerStats{ClientIPs: map[string]int{}, URLs: map[string]int{}, ActiveConnections: -1}
		a.cur[listener] = s
	}
	return s
}

// Take returns the aggregates and starts a new interval.
func (a *Accumulator) Take() map[string]*ListenerStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.cur
	a.cur = map[string]*ListenerStats{}
	a.seen = map[string]int{}
	return out
}
