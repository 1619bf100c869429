package clickhouse

import (
	"context"
	"time"

	"github.com/elbcloud/elb/services/stats/domain"
)

// Table names for tests.
const (
	TableRaw = tableRaw
	Table1m  = table1m
	Table1h  = table1h
)

// StatisticsFrom answers q from the given table (tests compare rollups with
// the raw table).
func (s *Store) StatisticsFrom(ctx context.Context, q domain.StatisticsQuery, table string) ([]domain.Datapoint, error) {
	return s.statistics(ctx, q, table)
}

// Source is the table Statistics would use for q.
func Source(q domain.StatisticsQuery) string { t, _ := source(q); return t }

// Optimize merges every part of our tables.
func (s *Store) Optimize(ctx context.Context) error {
	for _, t := range []string{tableRaw, table1m, table1h} {
		if err := s.conn.Exec(ctx, s.d.optimize(t)); err != nil {
			return err
		}
	}
	return nil
}

// CountRows counts rows of a table.
func (s *Store) CountRows(ctx context.Context, table string) (uint64, error) {
	var n uint64
	err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.d.table(table)).Scan(&n)
	return n, err
}

// LoseRollupDay drops a day from both rollups, as a crash between the raw
// and the view writes would lose (part of) it.
func (s *Store) LoseRollupDay(ctx context.Context, day time.Time) error {
	for _, t := range []string{table1m, table1h} {
		if err := s.conn.Exec(ctx, s.d.dropPartition(t, day.UTC().Format("20060102"))); err != nil {
			return err
		}
	}
	return nil
}
