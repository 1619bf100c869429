package domain_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/stats/domain"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func TestStatisticsQueryValidation(t *testing.T) {
	lb := [][2]string{{"LoadBalancer", "lb-1"}}
	cases := []struct {
		name       string
		metric     string
		dims       [][2]string
		start, end time.Time
		period     int64
		stats, ext []string
		want       error
		msg        string
	}{
		{"a valid query passes", "Latency", lb, t0, t0.Add(time.Hour), 60, []string{"Average"}, []string{"p99", "p99.9"}, nil, ""},
		{"unknown metric", "Nope", lb, t0, t0.Add(time.Hour), 60, []string{"Sum"}, nil, domain.ErrUnknownMetric, `"Nope"`},
		{"period not a multiple of 10 s", "Latency", lb, t0, t0.Add(time.Hour), 25, []string{"Sum"}, nil, domain.ErrInvalidPeriod, "multiple of 10"},
		{"negative period", "Latency", lb, t0, t0.Add(time.Hour), -60, []string{"Sum"}, nil, domain.ErrInvalidPeriod, ""},
		{"end before start", "Latency", lb, t0, t0.Add(-time.Hour), 60, []string{"Sum"}, nil, domain.ErrInvalidTimeRange, "after"},
		{"end equal to start", "Latency", lb, t0, t0, 60, []string{"Sum"}, nil, domain.ErrInvalidTimeRange, ""},
		{"missing times", "Latency", lb, time.Time{}, t0, 60, []string{"Sum"}, nil, domain.ErrInvalidTimeRange, "required"},
		{"more than 1440 datapoints", "Latency", lb, t0, t0.Add(24*time.Hour + 10*time.Second), 60, []string{"Sum"}, nil, domain.ErrRangeTooLarge, "1440"},
		{"exactly 1440 datapoints", "Latency", lb, t0, t0.Add(24 * time.Hour), 60, []string{"Sum"}, nil, nil, ""},
		{"more than 15 days", "Latency", lb, t0, t0.Add(16 * 24 * time.Hour), 86400, []string{"Sum"}, nil, domain.ErrRangeTooLarge, ""},
		{"a dimension that is not queryable", "Latency", [][2]string{{"ClientIP", "1.2.3.4"}}, t0, t0.Add(time.Hour), 60, []string{"Sum"}, nil, domain.ErrInvalidDimension, "ClientIP"},
		{"a dimension given twice", "Latency", [][2]string{{"LoadBalancer", "a"}, {"LoadBalancer", "b"}}, t0, t0.Add(time.Hour), 60, []string{"Sum"}, nil, domain.ErrInvalidDimension, "twice"},
		{"an empty dimension value", "Latency", [][2]string{{"LoadBalancer", ""}}, t0, t0.Add(time.Hour), 60, []string{"Sum"}, nil, domain.ErrInvalidDimension, ""},
		{"unknown statistic", "Latency", lb, t0, t0.Add(time.Hour), 60, []string{"Mean"}, nil, domain.ErrInvalidStatistic, "Mean"},
		{"percentile above 100", "Latency", lb, t0, t0.Add(time.Hour), 60, nil, []string{"p100.1"}, domain.ErrInvalidStatistic, ""},
		{"percentile zero", "Latency", lb, t0, t0.Add(time.Hour), 60, nil, []string{"p0"}, domain.ErrInvalidStatistic, ""},
		{"percentile without p", "Latency", lb, t0, t0.Add(time.Hour), 60, nil, []string{"99"}, domain.ErrInvalidStatistic, ""},
		{"percentile in exponent form", "Latency", lb, t0, t0.Add(time.Hour), 60, nil, []string{"p1e1"}, domain.ErrInvalidStatistic, ""},
		{"no statistic at all", "Latency", lb, t0, t0.Add(time.Hour), 60, nil, nil, domain.ErrInvalidStatistic, "at least one"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := domain.NewStatisticsQuery(c.metric, c.dims, c.start, c.end, c.period, c.stats, c.ext)
			if c.want == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) || !errors.Is(err, domain.ErrInvalidQuery) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v containing %q", err, c.want, c.msg)
			}
		})
	}
}

func TestQuantileExactMatchesClickHouseDefinition(t *testing.T) {
	vs := []float64{5, 1, 4, 2, 3, 0.5, 9, 7, 8, 6}
	for _, c := range []struct {
		level float64
		want  float64
	}{{0.5, 5}, {0.9, 9}, {0.99, 9}, {1, 9}, {0.001, 0.5}, {0.1, 1}} {
		if got := domain.QuantileExact(append([]float64(nil), vs...), c.level); got != c.want {
			t.Errorf("level %v: got %v want %v", c.level, got, c.want)
		}
	}
	if !math.IsNaN(domain.QuantileExact(nil, 0.5)) {
		t.Error("empty values should give NaN")
	}
}

func TestBucketsAreAlignedToThePeriodSinceTheEpoch(t *testing.T) {
	got := domain.Bucket(t0.Add(7*time.Minute+30*time.Second), 5*time.Minute)
	if !got.Equal(t0.Add(5 * time.Minute)) {
		t.Fatal(got)
	}
}

func TestSampleBatchValidation(t *testing.T) {
	good := func() events.SampleBatch {
		return events.SampleBatch{NodeID: "node-1", Time: t0, Interval: 10 * time.Second, Points: []events.SamplePoint{
			{Metric: "RequestCount", Dimensions: map[string]string{"LoadBalancer": "lb-1"}, Count: 2, Sum: 2, Min: 1, Max: 1},
			{Metric: "ClientIPRequestCount", Dimensions: map[string]string{"LoadBalancer": "lb-1", "ClientIP": "10.0.0.1"}, Count: 1, Sum: 5, Min: 5, Max: 5},
		}}
	}
	b, err := domain.NewBatch(good())
	if err != nil {
		t.Fatal(err)
	}
	if !b.Start.Equal(t0.Add(-10*time.Second)) || b.ID != domain.BatchID("node-1", t0, b.Points) || b.Points[1].TopKey != "10.0.0.1" {
		t.Fatalf("batch %+v", b)
	}
	// Parts of one interval split over several batches get their own ids;
	// the same batch again gets the same id.
	again, _ := domain.NewBatch(good())
	part := good()
	part.Points = part.Points[1:]
	p2, _ := domain.NewBatch(part)
	if again.ID != b.ID || p2.ID == b.ID {
		t.Fatalf("ids: %x again %x part %x", b.ID, again.ID, p2.ID)
	}
	cases := map[string]func(*events.SampleBatch){
		"node id with a dot":                func(s *events.SampleBatch) { s.NodeID = "a.b" },
		"no time":                           func(s *events.SampleBatch) { s.Time = time.Time{} },
		"zero interval":                     func(s *events.SampleBatch) { s.Interval = 0 },
		"unknown metric":                    func(s *events.SampleBatch) { s.Points[0].Metric = "Bogus" },
		"unknown dimension":                 func(s *events.SampleBatch) { s.Points[0].Dimensions["Tenant"] = "x" },
		"comma in a dimension value":        func(s *events.SampleBatch) { s.Points[0].Dimensions["LoadBalancer"] = "a,b" },
		"NaN sum":                           func(s *events.SampleBatch) { s.Points[0].Sum = math.NaN() },
		"negative count":                    func(s *events.SampleBatch) { s.Points[0].Count = -1 },
		"min above max":                     func(s *events.SampleBatch) { s.Points[0].Min = 3 },
		"too many values":                   func(s *events.SampleBatch) { s.Points[0].Values = make([]float64, events.MaxSampleValues+1) },
		"top metric without its key":        func(s *events.SampleBatch) { delete(s.Points[1].Dimensions, "ClientIP") },
		"client IP on a non-top metric":     func(s *events.SampleBatch) { s.Points[0].Dimensions["ClientIP"] = "1.1.1.1" },
		"infinite value among the raw ones": func(s *events.SampleBatch) { s.Points[0].Values = []float64{math.Inf(1)} },
		"control character in a URL top key": func(s *events.SampleBatch) {
			s.Points[1].Metric = "URLRequestCount"
			s.Points[1].Dimensions = map[string]string{"URL": "/a\n"}
		},
	}
	for name, mutate := range cases {
		t.Run(name+" is rejected", func(t *testing.T) {
			sb := good()
			mutate(&sb)
			if _, err := domain.NewBatch(sb); !errors.Is(err, domain.ErrInvalidBatch) {
				t.Fatalf("got %v, want ErrInvalidBatch", err)
			}
		})
	}
}
