// Package memstore is the embedded metric store used by `elb up` when no
// ClickHouse is configured. It answers exactly like the ClickHouse store
// (same contract suite) and keeps its data durable in an append-only file per
// day in the data directory, replayed on Open. Memory is bounded by the
// retention (whole days are dropped, like ClickHouse partitions) and by a
// maximum number of points (the oldest days are dropped first).
package memstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/stats/domain"
)

// ErrClosed is returned by a Store after Close.
var ErrClosed = errors.New("memstore closed")

// Options configure a Store.
type Options struct {
	// Retention is how long samples are kept (whole days). Default 7 days.
	Retention time.Duration
	// MaxPoints bounds the points held in memory; when exceeded, the oldest
	// days are dropped (never the newest). Default 2,000,000 (roughly 500 MB).
	MaxPoints int
	Logger    *slog.Logger
}

// Store is the embedded store. It is safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger

	mu     sync.RWMutex
	days   map[int64]*day // key: Unix day number (UTC)
	points int
	closed bool
}

type rec struct {
	ts    int64 // interval start, Unix seconds
	agent string
	p     *domain.Point
}

type day struct {
	byMetric map[string][]rec
	batches  map[uint64]struct{}
	f        *os.File
	points   int
}

const filePrefix, fileSuffix = "samples-", ".jsonl"

// fileBatch is the on-disk form of a batch: one JSON object per line.
type fileBatch struct {
	ID     uint64      `json:"id"`
	Agent  string      `json:"agent"`
	Start  int64       `json:"start"`
	Points []filePoint `json:"points"`
}

type filePoint struct {
	M  string    `json:"m"`
	LB string    `json:"lb,omitempty"`
	L  string    `json:"l,omitempty"`
	AZ string    `json:"az,omitempty"`
	P  string    `json:"p,omitempty"`
	N  string    `json:"n,omitempty"`
	K  string    `json:"k,omitempty"`
	C  float64   `json:"c"`
	S  float64   `json:"s"`
	Mn float64   `json:"mn"`
	Mx float64   `json:"mx"`
	V  []float64 `json:"v,omitempty"`
}

// Open opens (creating if needed) a store in dir and replays its files. A
// torn last line (a crash mid-append) is cut off.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Retention <= 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	if opts.MaxPoints <= 0 {
		opts.MaxPoints = 2_000_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	s := &Store{dir: dir, opts: opts, log: opts.Logger, days: map[int64]*day{}}
	names, err := filepath.Glob(filepath.Join(dir, filePrefix+"*"+fileSuffix))
	if err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		d, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), filePrefix), fileSuffix), 10, 64)
		if err != nil {
			s.log.Warn("memstore: ignoring file with unexpected name", "file", name)
			continue
		}
		if err := s.replay(d, name); err != nil {
			s.closeFiles()
			return nil, err
		}
	}
	s.enforceLimits(time.Now())
	return s, nil
}

func (s *Store) replay(dayNum int64, name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0o640)
	if err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	d := &day{byMetric: map[string][]rec{}, batches: map[uint64]struct{}{}, f: f}
	s.days[dayNum] = d
	r := bufio.NewReaderSize(f, 1<<20)
	var good int64
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				s.log.Warn("memstore: cutting torn last line", "file", name, "offset", good)
			}
			break
		}
		if err != nil {
			return fmt.Errorf("memstore: read %s: %w", name, err)
		}
		var fb fileBatch
		good += int64(len(line))
		if err := json.Unmarshal(line, &fb); err != nil {
			s.log.Warn("memstore: skipping corrupt line", "file", name, "offset", good-int64(len(line)), "err", err)
			continue
		}
		s.add(d, fromFile(fb))
	}
	if err := f.Truncate(good); err != nil {
		return fmt.Errorf("memstore: truncate %s: %w", name, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		return fmt.Errorf("memstore: seek %s: %w", name, err)
	}
	return nil
}

func toFile(b domain.Batch) fileBatch {
	fb := fileBatch{ID: b.ID, Agent: b.Agent, Start: b.Start.Unix(), Points: make([]filePoint, len(b.Points))}
	for i, p := range b.Points {
		fb.Points[i] = filePoint{M: p.Metric, LB: p.LoadBalancer, L: p.Listener, AZ: p.AvailabilityZone, P: p.Pool, N: p.Node, K: p.TopKey, C: p.Count, S: p.Sum, Mn: p.Min, Mx: p.Max, V: p.Values}
	}
	return fb
}

func fromFile(fb fileBatch) domain.Batch {
	b := domain.Batch{ID: fb.ID, Agent: fb.Agent, Start: time.Unix(fb.Start, 0).UTC(), Points: make([]domain.Point, len(fb.Points))}
	for i, p := range fb.Points {
		b.Points[i] = domain.Point{Metric: p.M, LoadBalancer: p.LB, Listener: p.L, AvailabilityZone: p.AZ, Pool: p.P, Node: p.N, TopKey: p.K, Count: p.C, Sum: p.S, Min: p.Mn, Max: p.Mx, Values: p.V}
	}
	return b
}

func dayOf(unix int64) int64 { return int64(math.Floor(float64(unix) / 86400)) }

// add puts a batch in memory. s.mu must be held for writing (or the store
// not yet shared).
func (s *Store) add(d *day, b domain.Batch) {
	if _, dup := d.batches[b.ID]; dup {
		return
	}
	d.batches[b.ID] = struct{}{}
	ts := b.Start.Unix()
	for i := range b.Points {
		p := &b.Points[i]
		d.byMetric[p.Metric] = append(d.byMetric[p.Metric], rec{ts: ts, agent: b.Agent, p: p})
	}
	d.points += len(b.Points)
	s.points += len(b.Points)
}

// Insert implements app.Store: new batches are appended to their day's file
// and synced before they become visible; batches seen before are skipped.
func (s *Store) Insert(ctx context.Context, batches []domain.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	type pending struct {
		d   *day
		buf bytes.Buffer
		bs  []domain.Batch
	}
	byDay := map[int64]*pending{}
	seen := map[uint64]bool{}
	for _, b := range batches {
		dn := dayOf(b.Start.Unix())
		d := s.days[dn]
		if d != nil {
			if _, dup := d.batches[b.ID]; dup {
				continue
			}
		}
		if seen[b.ID] {
			continue
		}
		seen[b.ID] = true
		pd := byDay[dn]
		if pd == nil {
			if d == nil {
				f, err := os.OpenFile(filepath.Join(s.dir, fmt.Sprintf("%s%d%s", filePrefix, dn, fileSuffix)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
				if err != nil {
					return fmt.Errorf("memstore insert: %w", err)
				}
				d = &day{byMetric: map[string][]rec{}, batches: map[uint64]struct{}{}, f: f}
				s.days[dn] = d
			}
			pd = &pending{d: d}
			byDay[dn] = pd
		}
		line, err := json.Marshal(toFile(b))
		if err != nil {
			return fmt.Errorf("memstore insert: %w", err)
		}
		pd.buf.Write(line)
		pd.buf.WriteByte('\n')
		pd.bs = append(pd.bs, b)
	}
	for _, pd := range byDay {
		if err := appendSync(pd.d.f, pd.buf.Bytes()); err != nil {
			return fmt.Errorf("memstore insert: %w", err)
		}
	}
	for _, pd := range byDay {
		for _, b := range pd.bs {
			s.add(pd.d, b)
		}
	}
	if len(byDay) > 0 {
		s.enforceLimits(time.Now())
	}
	return ctx.Err()
}

// enforceLimits drops days beyond the retention and, while over MaxPoints,
// the oldest days except the newest. s.mu must be held.
func (s *Store) enforceLimits(now time.Time) {
	cut := dayOf(now.Add(-s.opts.Retention).Unix())
	keys := make([]int64, 0, len(s.days))
	for k := range s.days {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if k < cut || (s.points > s.opts.MaxPoints && i < len(keys)-1) {
			s.dropDay(k)
		}
	}
}

func (s *Store) dropDay(k int64) {
	d := s.days[k]
	_ = d.f.Close()
	name := d.f.Name()
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("memstore: remove expired day", "file", name, "err", err)
	}
	s.points -= d.points
	delete(s.days, k)
	s.log.Info("memstore: dropped day", "day", time.Unix(k*86400, 0).UTC().Format(time.DateOnly), "points", d.points)
}

// DropBefore drops every whole day that ends before t (retention).
func (s *Store) DropBefore(_ context.Context, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := dayOf(t.Unix())
	for k := range s.days {
		if k < cut {
			s.dropDay(k)
		}
	}
	return nil
}

// Close closes the day files.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.closeFiles()
}

func (s *Store) closeFiles() error {
	var errs []error
	for _, d := range s.days {
		errs = append(errs, d.f.Close())
	}
	return errors.Join(errs...)
}

// scan calls fn for every record of metric with start in [from, to).
// s.mu must be held for reading.
func (s *Store) scan(metric string, from, to int64, fn func(r *rec)) {
	for k, d := range s.days {
		if k < dayOf(from) || k > dayOf(to) {
			continue
		}
		rs := d.byMetric[metric]
		for i := range rs {
			if r := &rs[i]; r.ts >= from && r.ts < to {
				fn(r)
			}
		}
	}
}

type acc struct {
	dp     domain.Datapoint
	values []float64
}

// Statistics implements app.Store.
func (s *Store) Statistics(ctx context.Context, q domain.StatisticsQuery) ([]domain.Datapoint, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	period := int64(q.Period / time.Second)
	buckets := map[int64]*acc{}
	s.scan(q.Metric, q.Start.Unix(), q.End.Unix(), func(r *rec) {
		if !q.Filter.Matches(r.p) {
			return
		}
		b := r.ts - r.ts%period
		a := buckets[b]
		if a == nil {
			a = &acc{dp: domain.Datapoint{Start: time.Unix(b, 0).UTC(), Min: math.Inf(1), Max: math.Inf(-1)}}
			buckets[b] = a
		}
		a.dp.Sum += r.p.Sum
		a.dp.SampleCount += r.p.Count
		if r.p.Count > 0 {
			a.dp.Min = min(a.dp.Min, r.p.Min)
			a.dp.Max = max(a.dp.Max, r.p.Max)
		}
		if len(q.Percentiles) > 0 {
			a.values = append(a.values, r.p.Values...)
		}
	})
	out := make([]domain.Datapoint, 0, len(buckets))
	for _, a := range buckets {
		if math.IsInf(a.dp.Min, 1) {
			a.dp.Min, a.dp.Max = 0, 0
		}
		if len(a.values) > 0 {
			a.dp.Percentiles = map[string]float64{}
			for _, p := range q.Percentiles {
				a.dp.Percentiles[p.Name] = domain.QuantileExact(a.values, p.Level)
			}
		}
		out = append(out, a.dp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, ctx.Err()
}

// ListMetrics implements app.Store.
func (s *Store) ListMetrics(ctx context.Context, q domain.ListQuery, limit int) ([]domain.MetricDims, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	set := map[domain.MetricDims]struct{}{}
	for _, d := range s.days {
		for m, rs := range d.byMetric {
			if q.Metric != "" && m != q.Metric {
				continue
			}
			for i := range rs {
				k := domain.MetricDims{Metric: m, Dims: rs[i].p.Dims()}
				if _, ok := set[k]; ok {
					continue
				}
				if q.Matches(k.Metric, k.Dims) {
					set[k] = struct{}{}
				}
			}
		}
	}
	out := make([]domain.MetricDims, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Metric != out[j].Metric {
			return out[i].Metric < out[j].Metric
		}
		return out[i].Dims < out[j].Dims
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, ctx.Err()
}

// Top implements app.Store.
func (s *Store) Top(ctx context.Context, q domain.TopQuery) ([]domain.TopWindow, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	w := int64(domain.TopWindowLength / time.Second)
	wins := map[int64]map[string]float64{}
	s.scan(q.Metric, q.Start.Unix(), q.End.Unix(), func(r *rec) {
		if r.p.LoadBalancer != q.LoadBalancer {
			return
		}
		b := r.ts - r.ts%w
		m := wins[b]
		if m == nil {
			m = map[string]float64{}
			wins[b] = m
		}
		m[r.p.TopKey] += r.p.Sum
	})
	out := make([]domain.TopWindow, 0, len(wins))
	for b, m := range wins {
		es := make([]domain.TopEntry, 0, len(m))
		for k, v := range m {
			es = append(es, domain.TopEntry{Key: k, Requests: v})
		}
		out = append(out, domain.TopWindow{Start: time.Unix(b, 0).UTC(), Entries: domain.SortTop(es, q.Limit)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, ctx.Err()
}

// LBStats implements app.Store.
func (s *Store) LBStats(ctx context.Context, lb string) (domain.LBStats, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return domain.LBStats{}, ErrClosed
	}
	sum := func(metric string) float64 {
		var t float64
		s.scan(metric, math.MinInt64/2, math.MaxInt64/2, func(r *rec) {
			if r.p.LoadBalancer == lb {
				t += r.p.Sum
			}
		})
		return t
	}
	var st domain.LBStats
	st.BytesIn = sum(events.MetricProcessedBytesIn)
	st.BytesOut = sum(events.MetricProcessedBytesOut)
	st.TotalConnections = sum(events.MetricNewConnectionCount)
	for _, m := range domain.RequestErrorMetrics {
		st.RequestErrors += sum(m)
	}
	type key struct {
		agent string
		ts    int64
	}
	per := map[key]float64{}
	s.scan(events.MetricActiveConnectionCount, math.MinInt64/2, math.MaxInt64/2, func(r *rec) {
		if r.p.LoadBalancer == lb {
			v := 0.0
			if r.p.Count > 0 {
				v = r.p.Sum / r.p.Count
			}
			per[key{r.agent, r.ts}] += v
		}
	})
	latest := map[string]domain.AgentLatest{}
	for k, v := range per {
		if l, ok := latest[k.agent]; !ok || k.ts > l.TS {
			latest[k.agent] = domain.AgentLatest{TS: k.ts, Value: v}
		}
	}
	st.ActiveConnections = domain.SumActive(slices.Collect(maps.Values(latest)))
	return st, ctx.Err()
}

// appendSync appends data and syncs; on a failed write it cuts the file back
// so that a partial line never glues onto the next append.
func appendSync(f *os.File, data []byte) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		if terr := f.Truncate(fi.Size()); terr != nil {
			return errors.Join(err, terr)
		}
		return err
	}
	return f.Sync()
}
