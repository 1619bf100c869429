package domain

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"time"

	"github.com/elbcloud/elb/events"
)

// SampleInterval is the agents' sample interval; query periods are multiples
// of it.
const SampleInterval = 10 * time.Second

// Point is one stored statistic set: one metric and dimension combination
// over one sample interval.
type Point struct {
	Metric           string
	LoadBalancer     string
	Listener         string
	AvailabilityZone string
	Pool             string
	Node             string
	// TopKey is the ClientIP or URL dimension of the top-N metrics.
	TopKey string
	Count  float64
	Sum    float64
	Min    float64
	Max    float64
	Values []float64
}

// Dims returns the point's canonical dimension string (without TopKey):
// "Name=Value" pairs sorted by name, comma separated. Stores keep it so that
// ListMetrics can return dimension combinations.
func (p *Point) Dims() string {
	var b strings.Builder
	add := func(name, v string) {
		if v == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(v)
	}
	add(events.DimAvailabilityZone, p.AvailabilityZone)
	add(events.DimLoadBalancer, p.LoadBalancer)
	add(events.DimListener, p.Listener)
	add(events.DimNode, p.Node)
	add(events.DimPool, p.Pool)
	return b.String()
}

// ParseDims is the inverse of Point.Dims.
func ParseDims(s string) [][2]string {
	if s == "" {
		return nil
	}
	var out [][2]string
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, [2]string{k, v})
	}
	return out
}

// Batch is a validated SampleBatch as the stores keep it. All points share
// Start, the beginning of the sample interval (whole seconds, UTC).
type Batch struct {
	// ID identifies the batch for deduplication (see BatchID).
	ID     uint64
	Agent  string
	Start  time.Time
	Points []Point
}

// BatchID is the deduplication key of a batch: FNV-64a over the agent, the
// interval end and the points' content. A redelivered message or an agent
// re-publishing the same batch gives the same id; an agent that splits one
// interval's points over several batches (agents/runtime does, 400 points
// each) gives each part its own id.
func BatchID(agent string, end time.Time, points []Point) uint64 {
	h := fnv.New64a()
	var buf [8]byte
	str := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	num := func(f float64) {
		binary.LittleEndian.PutUint64(buf[:], math.Float64bits(f))
		h.Write(buf[:])
	}
	str(agent)
	binary.LittleEndian.PutUint64(buf[:], uint64(end.UnixNano()))
	h.Write(buf[:])
	for i := range points {
		p := &points[i]
		str(p.Metric)
		str(p.Dims())
		str(p.TopKey)
		num(p.Count)
		num(p.Sum)
		num(p.Min)
		num(p.Max)
		binary.LittleEndian.PutUint64(buf[:], uint64(len(p.Values)))
		h.Write(buf[:])
		for _, v := range p.Values {
			num(v)
		}
	}
	return h.Sum64()
}

// Limits on sample batches.
const (
	MaxPointsPerBatch = 10000
	maxDimValueLen    = 256
	maxTopKeyLen      = 1024
	maxInterval       = 5 * time.Minute
)

var minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// NewBatch validates a SampleBatch from an agent and converts it. Any error
// wraps ErrInvalidBatch: the whole batch is rejected, never half stored.
func NewBatch(sb events.SampleBatch) (Batch, error) {
	fail := func(format string, args ...any) (Batch, error) {
		return Batch{}, fmt.Errorf("%w from %q at %s: %s", ErrInvalidBatch, sb.NodeID, sb.Time.Format(time.RFC3339), fmt.Sprintf(format, args...))
	}
	if !events.ValidToken(sb.NodeID) {
		return fail("invalid node_id")
	}
	if sb.Time.Before(minTime) {
		return fail("missing or implausible time")
	}
	if sb.Interval <= 0 || sb.Interval > maxInterval {
		return fail("interval %s out of range (0, %s]", sb.Interval, maxInterval)
	}
	if len(sb.Points) > MaxPointsPerBatch {
		return fail("%d points, at most %d", len(sb.Points), MaxPointsPerBatch)
	}
	b := Batch{
		Agent:  sb.NodeID,
		Start:  sb.Time.Add(-sb.Interval).UTC().Truncate(time.Second),
		Points: make([]Point, 0, len(sb.Points)),
	}
	for i, sp := range sb.Points {
		p, err := newPoint(sp)
		if err != nil {
			return fail("point %d (%s): %v", i, sp.Metric, err)
		}
		b.Points = append(b.Points, p)
	}
	b.ID = BatchID(sb.NodeID, sb.Time, b.Points)
	return b, nil
}

func newPoint(sp events.SamplePoint) (Point, error) {
	if !events.KnownMetric(sp.Metric) {
		return Point{}, fmt.Errorf("unknown metric")
	}
	p := Point{Metric: sp.Metric, Count: sp.Count, Sum: sp.Sum, Min: sp.Min, Max: sp.Max}
	for name, v := range sp.Dimensions {
		var dst *string
		limit := maxDimValueLen
		switch name {
		case events.DimLoadBalancer:
			dst = &p.LoadBalancer
		case events.DimListener:
			dst = &p.Listener
		case events.DimAvailabilityZone:
			dst = &p.AvailabilityZone
		case events.DimPool:
			dst = &p.Pool
		case events.DimNode:
			dst = &p.Node
		case events.DimClientIP, events.DimURL:
			dst, limit = &p.TopKey, maxTopKeyLen
		default:
			return Point{}, fmt.Errorf("unknown dimension %q", name)
		}
		if err := validDimValue(v, limit, dst == &p.TopKey); err != nil {
			return Point{}, fmt.Errorf("dimension %s: %v", name, err)
		}
		*dst = v
	}
	switch sp.Metric {
	case events.MetricClientIPRequestCount:
		if _, ok := sp.Dimensions[events.DimClientIP]; !ok {
			return Point{}, fmt.Errorf("needs dimension %s", events.DimClientIP)
		}
		if _, ok := sp.Dimensions[events.DimURL]; ok {
			return Point{}, fmt.Errorf("dimension %s not allowed", events.DimURL)
		}
	case events.MetricURLRequestCount:
		if _, ok := sp.Dimensions[events.DimURL]; !ok {
			return Point{}, fmt.Errorf("needs dimension %s", events.DimURL)
		}
		if _, ok := sp.Dimensions[events.DimClientIP]; ok {
			return Point{}, fmt.Errorf("dimension %s not allowed", events.DimClientIP)
		}
	default:
		if p.TopKey != "" {
			return Point{}, fmt.Errorf("dimensions %s and %s only belong to the top-N metrics", events.DimClientIP, events.DimURL)
		}
	}
	for _, f := range []float64{sp.Count, sp.Sum, sp.Min, sp.Max} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return Point{}, fmt.Errorf("non-finite statistic")
		}
	}
	if sp.Count < 0 {
		return Point{}, fmt.Errorf("negative count")
	}
	if sp.Count > 0 && sp.Min > sp.Max {
		return Point{}, fmt.Errorf("min %v greater than max %v", sp.Min, sp.Max)
	}
	if len(sp.Values) > events.MaxSampleValues {
		return Point{}, fmt.Errorf("%d values, at most %d", len(sp.Values), events.MaxSampleValues)
	}
	for _, v := range sp.Values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Point{}, fmt.Errorf("non-finite value")
		}
	}
	if len(sp.Values) > 0 {
		p.Values = sp.Values // the batch owns the decoded slice
	}
	return p, nil
}

func validDimValue(v string, limit int, topKey bool) error {
	if v == "" || len(v) > limit {
		return fmt.Errorf("value must have 1 to %d bytes", limit)
	}
	for _, r := range v {
		if r < ' ' || r == 0x7f {
			return fmt.Errorf("control character in value")
		}
		if !topKey && (r == ',' || r == '=') {
			return fmt.Errorf("',' and '=' are not allowed in values")
		}
	}
	return nil
}
