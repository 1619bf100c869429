package clickhouse

import (
	"fmt"
	"strconv"
	"strings"
)

// This file holds every piece of SQL the store sends, so that the differences
// between ClickHouse versions live in one place. The baseline is ClickHouse
// 18.16 (Debian's package): no DateTime64, no TTL, no toStartOfInterval, no
// non-replicated insert deduplication, INSERT … VALUES through Exec is not
// used (it hangs against 18.16 with clickhouse-go v2); inserts go through
// PrepareBatch with an explicit column list. The SQL below also runs
// unchanged on current servers; dialect only switches what newer servers do
// better.

// dialect renders the SQL for one database. When a newer server needs
// different SQL, the server version goes in here and the branch lives in the
// method concerned; nothing outside this file builds SQL.
type dialect struct {
	db string
}

// Table names.
const (
	tableRaw = "elb_samples"
	table1m  = "elb_samples_1m"
	table1h  = "elb_samples_1h"
)

// rawColumns is the explicit column list of inserts into tableRaw, in the
// order Store.Insert appends values.
const rawColumns = "ts, metric, lb, listener, az, pool, node, dims, topkey, agent, batch, cnt, total, vmin, vmax, vals"

func (d dialect) table(name string) string { return quoteIdent(d.db) + "." + name }

// bucketExpr aligns a DateTime column to multiples of period seconds since
// the epoch. Arithmetic instead of toStartOfInterval (missing in 18.16) or
// toStartOfHour (which follows the server time zone): answers must not depend
// on the server's time zone.
func bucketExpr(col string, periodSeconds int64) string {
	return fmt.Sprintf("intDiv(toUInt32(%s), %d) * %d", col, periodSeconds, periodSeconds)
}

// schema returns the DDL statements, in order. Rollups are AggregatingMergeTree
// tables fed by materialized views on the raw table. Their ORDER BY holds
// every non-aggregate column: a column left out of the sorting key would be
// collapsed to an arbitrary row's value when parts merge.
func (d dialect) schema() []string {
	raw := d.table(tableRaw)
	stmts := []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s", quoteIdent(d.db)),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	ts DateTime, metric String, lb String, listener String, az String, pool String, node String,
	dims String, topkey String, agent String, batch UInt64,
	cnt Float64, total Float64, vmin Float64, vmax Float64, vals Array(Float64)
) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (metric, lb, ts, dims, topkey)`, raw),
	}
	for _, r := range []struct {
		table  string
		period int64
	}{{table1m, 60}, {table1h, 3600}} {
		stmts = append(stmts,
			fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	t DateTime, metric String, lb String, listener String, az String, pool String, node String,
	dims String, topkey String,
	c AggregateFunction(sum, Float64), s AggregateFunction(sum, Float64),
	mn AggregateFunction(minIf, Float64, UInt8), mx AggregateFunction(maxIf, Float64, UInt8)
) ENGINE = AggregatingMergeTree PARTITION BY toYYYYMMDD(t)
ORDER BY (metric, lb, t, dims, topkey, listener, az, pool, node)`, d.table(r.table)),
			// Aliases differ from the source columns on purpose: ClickHouse
			// substitutes aliases everywhere in a query, so "sumState(cnt) AS
			// cnt" would change what "cnt > 0" means.
			fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s TO %s AS\n%s",
				d.table(r.table+"_mv"), d.table(r.table), d.rollupSelect(r.period, "")))
	}
	return stmts
}

// rollupSelect is the materialized view's SELECT for a rollup of the given
// resolution, optionally restricted to one day partition of the raw table.
func (d dialect) rollupSelect(period int64, day string) string {
	where := ""
	if day != "" {
		where = " WHERE toYYYYMMDD(ts) = " + day
	}
	return fmt.Sprintf(`SELECT toDateTime(%s) AS t, metric, lb, listener, az, pool, node, dims, topkey,
	sumState(cnt) AS c, sumState(total) AS s, minIfState(vmin, cnt > 0) AS mn, maxIfState(vmax, cnt > 0) AS mx
FROM %s%s GROUP BY t, metric, lb, listener, az, pool, node, dims, topkey`, bucketExpr("ts", period), d.table(tableRaw), where)
}

// rebuildRollup refills one day of a rollup from the raw table (after the
// day was dropped from the rollup).
func (d dialect) rebuildRollup(table string, period int64, day string) string {
	return fmt.Sprintf("INSERT INTO %s (t, metric, lb, listener, az, pool, node, dims, topkey, c, s, mn, mx) %s",
		d.table(table), d.rollupSelect(period, day))
}

// insertRaw is the batch insert statement.
func (d dialect) insertRaw() string {
	return fmt.Sprintf("INSERT INTO %s (%s)", d.table(tableRaw), rawColumns)
}

// seenBatches finds which of the given batch ids are stored already.
func (d dialect) seenBatches(from, to int64, ids []uint64) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(id, 10))
	}
	return fmt.Sprintf("SELECT DISTINCT batch FROM %s WHERE ts >= toDateTime(%d) AND ts <= toDateTime(%d) AND batch IN (%s)",
		d.table(tableRaw), from, to, b.String())
}

// where is a conjunction of conditions with positional arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) String() string { return strings.Join(w.conds, " AND ") }

// rangeCond restricts a time column to [from, to) (Unix seconds).
func rangeCond(col string, from, to int64) string {
	return fmt.Sprintf("%s >= toDateTime(%d) AND %s < toDateTime(%d)", col, from, col, to)
}

// statsFromRaw: bucket, SampleCount, Sum, Minimum, Maximum from raw samples.
func (d dialect) statsFromRaw(periodSeconds int64, w *where) string {
	return fmt.Sprintf(`SELECT toUInt64(%s) AS b, sum(cnt), sum(total), minIf(vmin, cnt > 0), maxIf(vmax, cnt > 0)
FROM %s WHERE %s GROUP BY b ORDER BY b`, bucketExpr("ts", periodSeconds), d.table(tableRaw), w)
}

// statsFromRollup: the same from a rollup table.
func (d dialect) statsFromRollup(table string, periodSeconds int64, w *where) string {
	return fmt.Sprintf(`SELECT toUInt64(%s) AS b, sumMerge(c), sumMerge(s), minIfMerge(mn), maxIfMerge(mx)
FROM %s WHERE %s GROUP BY b ORDER BY b`, bucketExpr("t", periodSeconds), d.table(table), w)
}

// percentiles: exact quantiles over the raw values, ClickHouse's
// quantileExact definition (element floor(level·n) of the sorted values).
func (d dialect) percentiles(periodSeconds int64, levels []float64, w *where) string {
	ls := make([]string, len(levels))
	for i, l := range levels {
		ls[i] = strconv.FormatFloat(l, 'g', -1, 64)
	}
	return fmt.Sprintf(`SELECT toUInt64(%s) AS b, quantilesExact(%s)(v)
FROM %s ARRAY JOIN vals AS v WHERE %s GROUP BY b ORDER BY b`, bucketExpr("ts", periodSeconds), strings.Join(ls, ", "), d.table(tableRaw), w)
}

// listMetrics reads distinct combinations from the hourly rollup (far fewer
// rows than the raw table).
func (d dialect) listMetrics(w *where, limit int) string {
	cond := "1"
	if len(w.conds) > 0 {
		cond = w.String()
	}
	return fmt.Sprintf("SELECT DISTINCT metric, dims FROM %s WHERE %s ORDER BY metric, dims LIMIT %d", d.table(table1h), cond, limit)
}

// top sums requests per window and key; the store keeps the first limit of
// each window (LIMIT BY exists in 18.16 but the cut is cheap in Go and keeps
// the tie order in one place).
func (d dialect) top(w *where) string {
	return fmt.Sprintf(`SELECT toUInt64(%s) AS win, topkey, sum(total) AS r
FROM %s WHERE %s GROUP BY win, topkey ORDER BY win`, bucketExpr("ts", 300), d.table(tableRaw), w)
}

// lbSums sums counters of one load balancer.
func (d dialect) lbSums(metrics []string) string {
	qs := make([]string, len(metrics))
	for i, m := range metrics {
		qs[i] = quoteString(m)
	}
	return fmt.Sprintf("SELECT metric, sum(total) FROM %s WHERE lb = ? AND metric IN (%s) GROUP BY metric", d.table(tableRaw), strings.Join(qs, ", "))
}

// lbActive returns per agent its newest interval and that interval's
// summed average ActiveConnectionCount.
func (d dialect) lbActive(metric string) string {
	return fmt.Sprintf(`SELECT agent, toUInt64(max(ts)), argMax(v, ts) FROM (
	SELECT agent, ts, sum(if(cnt > 0, total / cnt, 0)) AS v FROM %s WHERE lb = ? AND metric = %s GROUP BY agent, ts
) GROUP BY agent`, d.table(tableRaw), quoteString(metric))
}

// partitions lists the day partitions of our tables (toYYYYMMDD values).
func (d dialect) partitions() string {
	return fmt.Sprintf("SELECT DISTINCT table, partition FROM system.parts WHERE active AND database = %s AND table IN (%s, %s, %s)",
		quoteString(d.db), quoteString(tableRaw), quoteString(table1m), quoteString(table1h))
}

// dropPartition drops one day (retention; 18.16 has no TTL).
func (d dialect) dropPartition(table, partition string) string {
	return fmt.Sprintf("ALTER TABLE %s DROP PARTITION %s", d.table(table), partition)
}

// optimize merges all parts of a table (tests use it to check rollups stay
// exact across merges).
func (d dialect) optimize(table string) string {
	return fmt.Sprintf("OPTIMIZE TABLE %s FINAL", d.table(table))
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "\\`") + "`" }

func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
