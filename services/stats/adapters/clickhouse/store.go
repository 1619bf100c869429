// Package clickhouse is the production metric store: raw samples in a
// MergeTree table partitioned by day, 1-minute and 1-hour rollups in
// AggregatingMergeTree tables fed by materialized views, retention by
// dropping day partitions. It speaks the native protocol with LZ4
// compression through clickhouse-go/v2.
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/stats/domain"
)

// ErrConfig is returned for an unusable DSN.
var ErrConfig = errors.New("clickhouse config")

// Store is the ClickHouse store. It is safe for concurrent use.
type Store struct {
	conn driver.Conn
	d    dialect
	log  *slog.Logger
}

// Open connects to the server at dsn (clickhouse://host:9000/db?…), creates
// the database and schema if needed, and returns the store. LZ4 compression
// is used unless the DSN asks for another.
func Open(ctx context.Context, dsn string, log *slog.Logger) (*Store, error) {
	opts, err := ch.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if log == nil {
		log = slog.Default()
	}
	db := opts.Auth.Database
	if db == "" {
		db = "default"
	}
	// Connect without a default database: it may not exist yet.
	opts.Auth.Database = ""
	if opts.Compression == nil || opts.Compression.Method == ch.CompressionNone {
		opts.Compression = &ch.Compression{Method: ch.CompressionLZ4}
	}
	if opts.DialTimeout == 0 || opts.DialTimeout > 5*time.Second {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 60 * time.Second
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	s := &Store{conn: conn, d: dialect{db: db}, log: log}
	if err := s.migrate(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	for _, stmt := range s.d.schema() {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("clickhouse schema: %w", err)
		}
	}
	return nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.conn.Close() }

// Ping checks the server is reachable.
func (s *Store) Ping(ctx context.Context) error { return s.conn.Ping(ctx) }

// Insert implements app.Store. Batches already stored (looked up by batch id
// in the raw table, within the batches' time span) and repeats within the
// call are skipped; the rest go in one block through PrepareBatch. A batch's
// rows share one timestamp, hence one partition and one part: a batch is
// stored whole or not at all.
func (s *Store) Insert(ctx context.Context, batches []domain.Batch) error {
	if len(batches) == 0 {
		return nil
	}
	seen, err := s.stored(ctx, batches)
	if err != nil {
		return err
	}
	var c columns
	for _, bt := range batches {
		if seen[bt.ID] {
			continue
		}
		seen[bt.ID] = true
		c.add(bt)
	}
	if len(c.ts) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, s.d.insertRaw())
	if err != nil {
		return fmt.Errorf("clickhouse insert: prepare: %w", err)
	}
	// Column-wise appends: one call per column instead of reflection per
	// value; the column order is rawColumns.
	for i, col := range c.all() {
		if err := b.Column(i).Append(col); err != nil {
			_ = b.Abort()
			return fmt.Errorf("clickhouse insert: column %d: %w", i, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("clickhouse insert: send %d rows: %w", len(c.ts), err)
	}
	return nil
}

// columns holds one insert block column by column, in rawColumns order.
type columns struct {
	ts                                   []time.Time
	metric, lb, listener, az, pool, node []string
	dims, topkey, agent                  []string
	batch                                []uint64
	cnt, total, vmin, vmax               []float64
	vals                                 [][]float64
}

func (c *columns) add(bt domain.Batch) {
	for i := range bt.Points {
		p := &bt.Points[i]
		vals := p.Values
		if vals == nil {
			vals = []float64{}
		}
		c.ts = append(c.ts, bt.Start)
		c.metric = append(c.metric, p.Metric)
		c.lb = append(c.lb, p.LoadBalancer)
		c.listener = append(c.listener, p.Listener)
		c.az = append(c.az, p.AvailabilityZone)
		c.pool = append(c.pool, p.Pool)
		c.node = append(c.node, p.Node)
		c.dims = append(c.dims, p.Dims())
		c.topkey = append(c.topkey, p.TopKey)
		c.agent = append(c.agent, bt.Agent)
		c.batch = append(c.batch, bt.ID)
		c.cnt = append(c.cnt, p.Count)
		c.total = append(c.total, p.Sum)
		c.vmin = append(c.vmin, p.Min)
		c.vmax = append(c.vmax, p.Max)
		c.vals = append(c.vals, vals)
	}
}

func (c *columns) all() []any {
	return []any{c.ts, c.metric, c.lb, c.listener, c.az, c.pool, c.node, c.dims, c.topkey, c.agent, c.batch,
		c.cnt, c.total, c.vmin, c.vmax, c.vals}
}

// stored returns the ids of batches already in the raw table.
func (s *Store) stored(ctx context.Context, batches []domain.Batch) (map[uint64]bool, error) {
	from, to := int64(math.MaxInt64), int64(math.MinInt64)
	ids := make([]uint64, 0, len(batches))
	for _, b := range batches {
		from, to = min(from, b.Start.Unix()), max(to, b.Start.Unix())
		ids = append(ids, b.ID)
	}
	seen := make(map[uint64]bool, len(batches))
	rows, err := s.conn.Query(ctx, s.d.seenBatches(from, to, ids))
	if err != nil {
		return nil, fmt.Errorf("clickhouse insert: dedupe lookup: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("clickhouse insert: dedupe lookup: %w", err)
		}
		seen[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse insert: dedupe lookup: %w", err)
	}
	return seen, nil
}

func filterWhere(w *where, f domain.Filter) {
	for _, c := range []struct{ col, v string }{
		{"lb", f.LoadBalancer}, {"listener", f.Listener}, {"az", f.AvailabilityZone}, {"pool", f.Pool}, {"node", f.Node},
	} {
		if c.v != "" {
			w.add(c.col+" = ?", c.v)
		}
	}
}

// source picks the coarsest table that answers q exactly: a rollup only when
// the period and both range ends are multiples of its resolution.
func source(q domain.StatisticsQuery) (table string, res int64) {
	p, from, to := int64(q.Period/time.Second), q.Start.Unix(), q.End.Unix()
	for _, r := range []struct {
		table string
		res   int64
	}{{table1h, 3600}, {table1m, 60}} {
		if p%r.res == 0 && from%r.res == 0 && to%r.res == 0 {
			return r.table, r.res
		}
	}
	return tableRaw, 10
}

// Statistics implements app.Store. Basic statistics come from the coarsest
// exact rollup; percentiles always from the raw values.
func (s *Store) Statistics(ctx context.Context, q domain.StatisticsQuery) ([]domain.Datapoint, error) {
	table, _ := source(q)
	return s.statistics(ctx, q, table)
}

func (s *Store) statistics(ctx context.Context, q domain.StatisticsQuery, table string) ([]domain.Datapoint, error) {
	period := int64(q.Period / time.Second)
	col := "ts"
	if table != tableRaw {
		col = "t"
	}
	var w where
	w.add("metric = ?", q.Metric)
	w.add(rangeCond(col, q.Start.Unix(), q.End.Unix()))
	filterWhere(&w, q.Filter)
	sql := s.d.statsFromRaw(period, &w)
	if table != tableRaw {
		sql = s.d.statsFromRollup(table, period, &w)
	}
	rows, err := s.conn.Query(ctx, sql, w.args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse statistics: %w", err)
	}
	defer rows.Close()
	var out []domain.Datapoint
	idx := map[uint64]int{}
	for rows.Next() {
		var b uint64
		var d domain.Datapoint
		if err := rows.Scan(&b, &d.SampleCount, &d.Sum, &d.Min, &d.Max); err != nil {
			return nil, fmt.Errorf("clickhouse statistics: %w", err)
		}
		d.Start = time.Unix(int64(b), 0).UTC()
		idx[b] = len(out)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse statistics: %w", err)
	}
	if len(q.Percentiles) == 0 || len(out) == 0 {
		return out, nil
	}
	var pw where
	pw.add("metric = ?", q.Metric)
	pw.add(rangeCond("ts", q.Start.Unix(), q.End.Unix()))
	filterWhere(&pw, q.Filter)
	levels := make([]float64, len(q.Percentiles))
	for i, p := range q.Percentiles {
		levels[i] = p.Level
	}
	prows, err := s.conn.Query(ctx, s.d.percentiles(period, levels, &pw), pw.args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse percentiles: %w", err)
	}
	defer prows.Close()
	for prows.Next() {
		var b uint64
		var vs []float64
		if err := prows.Scan(&b, &vs); err != nil {
			return nil, fmt.Errorf("clickhouse percentiles: %w", err)
		}
		i, ok := idx[b]
		if !ok || len(vs) != len(q.Percentiles) {
			continue
		}
		out[i].Percentiles = make(map[string]float64, len(vs))
		for j, p := range q.Percentiles {
			out[i].Percentiles[p.Name] = vs[j]
		}
	}
	if err := prows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse percentiles: %w", err)
	}
	return out, nil
}

// ListMetrics implements app.Store.
func (s *Store) ListMetrics(ctx context.Context, q domain.ListQuery, limit int) ([]domain.MetricDims, error) {
	var w where
	if q.Metric != "" {
		w.add("metric = ?", q.Metric)
	}
	filterWhere(&w, q.Filter)
	for _, name := range q.HasDim {
		switch name {
		case events.DimLoadBalancer:
			w.add("lb != ''")
		case events.DimListener:
			w.add("listener != ''")
		case events.DimAvailabilityZone:
			w.add("az != ''")
		case events.DimPool:
			w.add("pool != ''")
		case events.DimNode:
			w.add("node != ''")
		}
	}
	rows, err := s.conn.Query(ctx, s.d.listMetrics(&w, limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse list metrics: %w", err)
	}
	defer rows.Close()
	out := []domain.MetricDims{}
	for rows.Next() {
		var m domain.MetricDims
		if err := rows.Scan(&m.Metric, &m.Dims); err != nil {
			return nil, fmt.Errorf("clickhouse list metrics: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Top implements app.Store.
func (s *Store) Top(ctx context.Context, q domain.TopQuery) ([]domain.TopWindow, error) {
	var w where
	w.add("metric = ?", q.Metric)
	w.add("lb = ?", q.LoadBalancer)
	w.add(rangeCond("ts", q.Start.Unix(), q.End.Unix()))
	rows, err := s.conn.Query(ctx, s.d.top(&w), w.args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse top: %w", err)
	}
	defer rows.Close()
	byWin := map[uint64][]domain.TopEntry{}
	for rows.Next() {
		var win uint64
		var e domain.TopEntry
		if err := rows.Scan(&win, &e.Key, &e.Requests); err != nil {
			return nil, fmt.Errorf("clickhouse top: %w", err)
		}
		byWin[win] = append(byWin[win], e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse top: %w", err)
	}
	out := make([]domain.TopWindow, 0, len(byWin))
	for win, es := range byWin {
		out = append(out, domain.TopWindow{Start: time.Unix(int64(win), 0).UTC(), Entries: domain.SortTop(es, q.Limit)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

// LBStats implements app.Store.
func (s *Store) LBStats(ctx context.Context, lb string) (domain.LBStats, error) {
	var st domain.LBStats
	metrics := append([]string{events.MetricProcessedBytesIn, events.MetricProcessedBytesOut, events.MetricNewConnectionCount}, domain.RequestErrorMetrics...)
	rows, err := s.conn.Query(ctx, s.d.lbSums(metrics), lb)
	if err != nil {
		return st, fmt.Errorf("clickhouse lbstats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		var v float64
		if err := rows.Scan(&m, &v); err != nil {
			return st, fmt.Errorf("clickhouse lbstats: %w", err)
		}
		switch {
		case m == events.MetricProcessedBytesIn:
			st.BytesIn = v
		case m == events.MetricProcessedBytesOut:
			st.BytesOut = v
		case m == events.MetricNewConnectionCount:
			st.TotalConnections = v
		case slices.Contains(domain.RequestErrorMetrics, m):
			st.RequestErrors += v
		}
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("clickhouse lbstats: %w", err)
	}
	arows, err := s.conn.Query(ctx, s.d.lbActive(events.MetricActiveConnectionCount), lb)
	if err != nil {
		return st, fmt.Errorf("clickhouse lbstats: %w", err)
	}
	defer arows.Close()
	var ls []domain.AgentLatest
	for arows.Next() {
		var agent string
		var ts uint64
		var v float64
		if err := arows.Scan(&agent, &ts, &v); err != nil {
			return st, fmt.Errorf("clickhouse lbstats: %w", err)
		}
		ls = append(ls, domain.AgentLatest{TS: int64(ts), Value: v})
	}
	st.ActiveConnections = domain.SumActive(ls)
	return st, arows.Err()
}

// DropBefore drops every day partition (raw and rollups) older than t's
// day: retention without TTL.
func (s *Store) DropBefore(ctx context.Context, t time.Time) error {
	cut, _ := strconv.Atoi(t.UTC().Format("20060102"))
	rows, err := s.conn.Query(ctx, s.d.partitions())
	if err != nil {
		return fmt.Errorf("clickhouse retention: %w", err)
	}
	type part struct{ table, partition string }
	var drop []part
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.table, &p.partition); err != nil {
			rows.Close()
			return fmt.Errorf("clickhouse retention: %w", err)
		}
		if day, err := strconv.Atoi(p.partition); err == nil && day < cut {
			drop = append(drop, p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clickhouse retention: %w", err)
	}
	for _, p := range drop {
		if err := s.conn.Exec(ctx, s.d.dropPartition(p.table, p.partition)); err != nil {
			return fmt.Errorf("clickhouse retention: drop %s %s: %w", p.table, p.partition, err)
		}
		s.log.Info("clickhouse: dropped partition", "table", p.table, "partition", p.partition)
	}
	return nil
}

// RebuildRollups recomputes one UTC day of both rollups from the raw table:
// the repair after a server crash between an insert's raw write and its
// materialized-view writes. The day must not be receiving inserts while it
// runs (a past day, or ingest stopped), or those rows would count twice.
func (s *Store) RebuildRollups(ctx context.Context, day time.Time) error {
	d := day.UTC().Format("20060102")
	for _, r := range []struct {
		table  string
		period int64
	}{{table1m, 60}, {table1h, 3600}} {
		if err := s.conn.Exec(ctx, s.d.dropPartition(r.table, d)); err != nil {
			return fmt.Errorf("clickhouse rebuild %s %s: %w", r.table, d, err)
		}
		if err := s.conn.Exec(ctx, s.d.rebuildRollup(r.table, r.period, d)); err != nil {
			return fmt.Errorf("clickhouse rebuild %s %s: %w", r.table, d, err)
		}
	}
	return nil
}
