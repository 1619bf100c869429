// Package storetest is the contract suite every app.Store implementation
// must pass: known samples in, exact statistics out, the same answers from
// every store.
package storetest

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/stats/app"
	"github.com/elbcloud/elb/services/stats/domain"
)

// Sample is one generated point with the batch fields it came with.
type Sample struct {
	TS    int64
	Agent string
	P     domain.Point
}

// Dataset is a deterministic set of batches and the flat list of what they
// contain, used to compute expected answers independently of any store.
type Dataset struct {
	Base    time.Time // first interval start
	Batches []domain.Batch
	Samples []Sample
}

type combo struct {
	agent, lb, listener, az string
}

var combos = []combo{
	{"node-1", "lb-a", "l1", "az1"},
	{"node-1", "lb-a", "l2", "az1"},
	{"node-2", "lb-a", "l1", "az2"},
	{"node-2", "lb-b", "l3", "az2"},
}

// NewDataset generates intervals 10 s samples starting at base for every
// metric (top-N metrics with a few keys each), from two agents, three
// dimension combinations. All numbers are small integers or quarters, so
// sums are exact in any order.
func NewDataset(base time.Time, intervals int) Dataset {
	base = base.UTC().Truncate(10 * time.Second)
	ds := Dataset{Base: base}
	for i := 0; i < intervals; i++ {
		start := base.Add(time.Duration(i) * domain.SampleInterval)
		for _, agent := range []string{"node-1", "node-2"} {
			b := domain.Batch{Agent: agent, Start: start}
			for ci, c := range combos {
				if c.agent != agent {
					continue
				}
				for mi, m := range events.Metrics {
					j := ci*31 + mi
					p := domain.Point{Metric: m, LoadBalancer: c.lb, Listener: c.listener, AvailabilityZone: c.az, Node: agent}
					switch m {
					case events.MetricClientIPRequestCount, events.MetricURLRequestCount:
						for k := 0; k < 4; k++ {
							q := p
							if m == events.MetricURLRequestCount {
								q.TopKey = fmt.Sprintf("/path/%d?q=a,b=c", (i+k+ci)%6)
							} else {
								q.TopKey = fmt.Sprintf("10.0.%d.%d", ci, (i*k+k)%7)
							}
							q.Count = float64(1 + (i+k)%3)
							q.Sum = float64((i*5+k*11+ci)%23 + 1)
							q.Min, q.Max = 1, q.Sum
							b.Points = append(b.Points, q)
						}
						continue
					}
					p.Count = float64(1 + (i+j)%4)
					p.Min = float64((i + j) % 5)
					p.Max = p.Min + float64(i%7)
					p.Sum = float64((i*7+j*3)%50) * p.Count
					if (i+j)%11 == 0 {
						// An interval without events: its min/max must not count.
						p.Count, p.Sum, p.Min, p.Max = 0, 0, -999, -999
					}
					if m == events.MetricLatency && p.Count > 0 {
						for k := 0; k < 1+(i+ci)%6; k++ {
							p.Values = append(p.Values, float64((i*13+j*5+k*17)%40)*0.25)
						}
					}
					b.Points = append(b.Points, p)
				}
			}
			b.ID = domain.BatchID(agent, start.Add(domain.SampleInterval), b.Points)
			ds.Batches = append(ds.Batches, b)
			for _, p := range b.Points {
				ds.Samples = append(ds.Samples, Sample{TS: start.Unix(), Agent: agent, P: p})
			}
		}
	}
	return ds
}

// Expect computes the answer of q over the dataset by brute force.
func (ds Dataset) Expect(q domain.StatisticsQuery) []domain.Datapoint {
	period := int64(q.Period / time.Second)
	type accum struct {
		d      domain.Datapoint
		any    bool
		values []float64
	}
	m := map[int64]*accum{}
	for _, s := range ds.Samples {
		if s.P.Metric != q.Metric || s.TS < q.Start.Unix() || s.TS >= q.End.Unix() || !q.Filter.Matches(&s.P) {
			continue
		}
		b := s.TS - s.TS%period
		a := m[b]
		if a == nil {
			a = &accum{d: domain.Datapoint{Start: time.Unix(b, 0).UTC()}}
			m[b] = a
		}
		a.d.Sum += s.P.Sum
		a.d.SampleCount += s.P.Count
		if s.P.Count > 0 {
			if !a.any {
				a.d.Min, a.d.Max, a.any = s.P.Min, s.P.Max, true
			}
			a.d.Min = math.Min(a.d.Min, s.P.Min)
			a.d.Max = math.Max(a.d.Max, s.P.Max)
		}
		a.values = append(a.values, s.P.Values...)
	}
	out := []domain.Datapoint{}
	for _, a := range m {
		if len(a.values) > 0 && len(q.Percentiles) > 0 {
			sort.Float64s(a.values)
			a.d.Percentiles = map[string]float64{}
			for _, p := range q.Percentiles {
				idx := len(a.values) - 1
				if p.Level < 1 {
					idx = int(p.Level * float64(len(a.values)))
				}
				a.d.Percentiles[p.Name] = a.values[idx]
			}
		}
		out = append(out, a.d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Opener returns a fresh, empty store for one test.
type Opener func(t *testing.T) app.Store

// Run runs the contract suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	ctx := context.Background()
	// Two hours back from a whole hour, spanning an hour boundary.
	base := time.Now().UTC().Truncate(time.Hour).Add(-2*time.Hour - 20*time.Minute)
	ds := NewDataset(base, 240) // 40 minutes
	s := open(t)
	// Insert in chunks, with one chunk repeated (a redelivery) and one
	// batch repeated within a call.
	for i := 0; i < len(ds.Batches); i += 50 {
		chunk := ds.Batches[i:min(i+50, len(ds.Batches))]
		if i == 100 {
			chunk = append(append([]domain.Batch{}, chunk...), chunk[0])
		}
		if err := s.Insert(ctx, chunk); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	if err := s.Insert(ctx, ds.Batches[100:150]); err != nil {
		t.Fatalf("insert redelivered: %v", err)
	}

	t.Run("every metric and statistic is exact", func(t *testing.T) {
		for _, m := range events.Metrics {
			for _, period := range []int64{10, 60, 300, 3600} {
				n := CheckStatistics(t, s, ds, m, nil, ds.Base, ds.Base.Add(40*time.Minute), period)
				if want := (2400 + period - 1) / period; period < 3600 && int64(n) != want {
					t.Fatalf("%s /%d: %d datapoints, want %d", m, period, n, want)
				}
			}
		}
	})
	t.Run("period boundaries", func(t *testing.T) {
		cases := []struct {
			from, to time.Duration
			period   int64
		}{
			{0, 10 * time.Second, 10},
			{10 * time.Second, 20 * time.Second, 10},
			{30 * time.Second, 20*time.Minute + 10*time.Second, 60},
			{59 * time.Second, 61 * time.Second, 60},
			{20 * time.Minute, 21 * time.Minute, 60},                  // exactly the hour boundary
			{19*time.Minute + 50*time.Second, 20 * time.Minute, 3600}, // last interval before it
			{15 * time.Minute, 25 * time.Minute, 3600},
			{-time.Hour, time.Hour, 300},
			{5 * time.Second, 35 * time.Second, 20},
		}
		for _, c := range cases {
			for _, m := range []string{events.MetricRequestCount, events.MetricLatency, events.MetricHealthyHostCount} {
				CheckStatistics(t, s, ds, m, nil, ds.Base.Add(c.from), ds.Base.Add(c.to), c.period)
			}
		}
	})
	t.Run("dimension filters", func(t *testing.T) {
		filters := [][][2]string{
			{{"LoadBalancer", "lb-a"}},
			{{"LoadBalancer", "lb-b"}},
			{{"LoadBalancer", "lb-a"}, {"Listener", "l1"}},
			{{"LoadBalancer", "lb-a"}, {"AvailabilityZone", "az2"}},
			{{"Node", "node-1"}},
			{{"AvailabilityZone", "az1"}, {"Listener", "l2"}},
			{{"LoadBalancer", "lb-none"}},
		}
		for _, f := range filters {
			for _, m := range []string{events.MetricRequestCount, events.MetricLatency, events.MetricClientIPRequestCount} {
				for _, period := range []int64{60, 600} {
					CheckStatistics(t, s, ds, m, f, ds.Base, ds.Base.Add(40*time.Minute), period)
				}
			}
		}
	})
	t.Run("empty ranges give no datapoints", func(t *testing.T) {
		for _, r := range [][2]time.Time{
			{ds.Base.Add(-time.Hour), ds.Base},
			{ds.Base.Add(40 * time.Minute), ds.Base.Add(2 * time.Hour)},
			{ds.Base.Add(-48 * time.Hour), ds.Base.Add(-47 * time.Hour)},
		} {
			q := mustQuery(t, events.MetricRequestCount, nil, r[0], r[1], 60)
			got, err := s.Statistics(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 0 {
				t.Fatalf("range %v: got %d datapoints, want none", r, len(got))
			}
		}
	})
	t.Run("list metrics", func(t *testing.T) {
		got, err := s.ListMetrics(ctx, mustList(t, events.MetricLatency, [][2]string{{"LoadBalancer", "lb-a"}}), 100)
		if err != nil {
			t.Fatal(err)
		}
		want := []domain.MetricDims{
			{Metric: "Latency", Dims: "AvailabilityZone=az1,LoadBalancer=lb-a,Listener=l1,Node=node-1"},
			{Metric: "Latency", Dims: "AvailabilityZone=az1,LoadBalancer=lb-a,Listener=l2,Node=node-1"},
			{Metric: "Latency", Dims: "AvailabilityZone=az2,LoadBalancer=lb-a,Listener=l1,Node=node-2"},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v\nwant %v", got, want)
		}
		all, err := s.ListMetrics(ctx, mustList(t, "", nil), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(events.Metrics)*len(combos) {
			t.Fatalf("all metrics: got %d, want %d", len(all), len(events.Metrics)*len(combos))
		}
		lim, err := s.ListMetrics(ctx, mustList(t, "", [][2]string{{"Listener", ""}}), 5)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(lim, all[:5]) {
			t.Fatalf("limited list %v, want %v", lim, all[:5])
		}
		none, err := s.ListMetrics(ctx, mustList(t, "", [][2]string{{"Pool", ""}}), 5)
		if err != nil || len(none) != 0 {
			t.Fatalf("Pool filter: %v %v, want none", none, err)
		}
	})
	t.Run("top client IPs and URLs per 5 minutes", func(t *testing.T) {
		for _, kind := range []string{domain.TopKindClientIP, domain.TopKindURL} {
			for _, lb := range []string{"lb-a", "lb-b"} {
				for _, limit := range []int{1, 3, 10} {
					q, err := domain.NewTopQuery(lb, kind, ds.Base.Add(time.Minute), ds.Base.Add(31*time.Minute), limit)
					if err != nil {
						t.Fatal(err)
					}
					got, err := s.Top(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if want := ds.ExpectTop(q); !reflect.DeepEqual(got, want) {
						t.Fatalf("top %s %s limit %d:\n got %v\nwant %v", kind, lb, limit, got, want)
					}
				}
			}
		}
	})
	t.Run("LB stats", func(t *testing.T) {
		for _, lb := range []string{"lb-a", "lb-b", "lb-none"} {
			got, err := s.LBStats(ctx, lb)
			if err != nil {
				t.Fatal(err)
			}
			if want := ds.ExpectLBStats(lb); got != want {
				t.Fatalf("%s: got %+v, want %+v", lb, got, want)
			}
		}
	})
}

// ExpectTop computes a top query by brute force.
func (ds Dataset) ExpectTop(q domain.TopQuery) []domain.TopWindow {
	w := int64(domain.TopWindowLength / time.Second)
	m := map[int64]map[string]float64{}
	for _, s := range ds.Samples {
		if s.P.Metric != q.Metric || s.P.LoadBalancer != q.LoadBalancer || s.TS < q.Start.Unix() || s.TS >= q.End.Unix() {
			continue
		}
		b := s.TS - s.TS%w
		if m[b] == nil {
			m[b] = map[string]float64{}
		}
		m[b][s.P.TopKey] += s.P.Sum
	}
	out := []domain.TopWindow{}
	for b, keys := range m {
		var es []domain.TopEntry
		for k, v := range keys {
			es = append(es, domain.TopEntry{Key: k, Requests: v})
		}
		sort.Slice(es, func(i, j int) bool {
			if es[i].Requests != es[j].Requests {
				return es[i].Requests > es[j].Requests
			}
			return es[i].Key < es[j].Key
		})
		out = append(out, domain.TopWindow{Start: time.Unix(b, 0).UTC(), Entries: es[:min(len(es), q.Limit)]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// ExpectLBStats computes LBStats by brute force.
func (ds Dataset) ExpectLBStats(lb string) domain.LBStats {
	var st domain.LBStats
	latest := map[string]int64{}
	vals := map[string]map[int64]float64{}
	for _, s := range ds.Samples {
		if s.P.LoadBalancer != lb {
			continue
		}
		switch s.P.Metric {
		case events.MetricProcessedBytesIn:
			st.BytesIn += s.P.Sum
		case events.MetricProcessedBytesOut:
			st.BytesOut += s.P.Sum
		case events.MetricNewConnectionCount:
			st.TotalConnections += s.P.Sum
		case events.MetricHTTPCodeELB4XX, events.MetricHTTPCodeELB5XX:
			st.RequestErrors += s.P.Sum
		case events.MetricActiveConnectionCount:
			if vals[s.Agent] == nil {
				vals[s.Agent] = map[int64]float64{}
			}
			if s.P.Count > 0 {
				vals[s.Agent][s.TS] += s.P.Sum / s.P.Count
			} else {
				vals[s.Agent][s.TS] += 0
			}
			latest[s.Agent] = max(latest[s.Agent], s.TS)
		}
	}
	var newest int64
	for _, ts := range latest {
		newest = max(newest, ts)
	}
	for a, ts := range latest {
		if ts >= newest-300 {
			st.ActiveConnections += vals[a][ts]
		}
	}
	return st
}

func mustQuery(t *testing.T, metric string, dims [][2]string, start, end time.Time, period int64) domain.StatisticsQuery {
	t.Helper()
	q, err := domain.NewStatisticsQuery(metric, dims, start, end, period, []string{"Sum"}, []string{"p50", "p90", "p99", "p99.9", "p100", "p0.1"})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	return q
}

func mustList(t *testing.T, metric string, dims [][2]string) domain.ListQuery {
	t.Helper()
	q, err := domain.NewListQuery(metric, dims)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// CheckStatistics queries s and compares with the brute-force answer.
// It returns the number of datapoints.
func CheckStatistics(t *testing.T, s app.Store, ds Dataset, metric string, dims [][2]string, start, end time.Time, period int64) int {
	t.Helper()
	q := mustQuery(t, metric, dims, start, end, period)
	got, err := s.Statistics(context.Background(), q)
	if err != nil {
		t.Fatalf("%s %v [%s, %s) /%d: %v", metric, dims, start, end, period, err)
	}
	want := ds.Expect(q)
	if !reflect.DeepEqual(normalize(got), normalize(want)) {
		t.Fatalf("%s %v [%s, %s) /%d:\n got %v\nwant %v", metric, dims, start.Format(time.TimeOnly), end.Format(time.TimeOnly), period, got, want)
	}
	return len(got)
}

func normalize(ds []domain.Datapoint) []domain.Datapoint {
	out := make([]domain.Datapoint, len(ds))
	for i, d := range ds {
		if len(d.Percentiles) == 0 {
			d.Percentiles = nil
		}
		d.Start = d.Start.UTC()
		out[i] = d
	}
	return out
}
