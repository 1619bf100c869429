package clickhouse_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/stats/adapters/clickhouse"
	"github.com/elbcloud/elb/services/stats/adapters/clickhouse/chtest"
	"github.com/elbcloud/elb/services/stats/domain"
	"github.com/elbcloud/elb/services/stats/storetest"
)

// compareRollups checks that every rollup answer equals the raw answer for
// every metric, at 1-minute and 1-hour resolution, with and without filters.
func compareRollups(t *testing.T, s *clickhouse.Store, ds storetest.Dataset, from, to time.Time) {
	t.Helper()
	ctx := context.Background()
	checked := 0
	for _, m := range []string{events.MetricRequestCount, events.MetricLatency, events.MetricHealthyHostCount,
		events.MetricActiveConnectionCount, events.MetricNodeCPUUtilization, events.MetricClientIPRequestCount} {
		for _, dims := range [][][2]string{nil, {{"LoadBalancer", "lb-a"}, {"Listener", "l1"}}, {{"AvailabilityZone", "az2"}}} {
			for _, c := range []struct {
				period int64
				table  string
			}{{60, clickhouse.Table1m}, {600, clickhouse.Table1m}, {3600, clickhouse.Table1h}} {
				q, err := domain.NewStatisticsQuery(m, dims, from, to, c.period, []string{"Sum"}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got := clickhouse.Source(q); got != c.table {
					t.Fatalf("period %d over [%s, %s) reads %s, want %s", c.period, from, to, got, c.table)
				}
				raw, err := s.StatisticsFrom(ctx, q, clickhouse.TableRaw)
				if err != nil {
					t.Fatal(err)
				}
				rolled, err := s.StatisticsFrom(ctx, q, c.table)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(raw, rolled) {
					t.Fatalf("%s %v /%d from %s differs from raw:\n rollup %v\n    raw %v", m, dims, c.period, c.table, rolled, raw)
				}
				want := ds.Expect(q)
				if len(want) == 0 {
					want = nil
				}
				if !reflect.DeepEqual(raw, want) {
					t.Fatalf("%s %v /%d raw differs from expected:\n raw %v\nwant %v", m, dims, c.period, raw, want)
				}
				checked += len(raw)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no datapoints compared")
	}
}

func TestRollupsEqualRawAcrossPartsAndMerges(t *testing.T) {
	srv := chtest.Start(t)
	s := open(t, srv.DSN)
	ctx := context.Background()
	// One hour of data from an hour boundary, inserted 13 batches (6.5
	// intervals) at a time: every rollup key (minute, metric, dimensions) is
	// spread over several inserts, hence several parts.
	base := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	ds := storetest.NewDataset(base, 360)
	for i := 0; i < len(ds.Batches); i += 13 {
		if err := s.Insert(ctx, ds.Batches[i:min(i+13, len(ds.Batches))]); err != nil {
			t.Fatal(err)
		}
	}
	from, to := base, base.Add(time.Hour)
	t.Run("before merges", func(t *testing.T) { compareRollups(t, s, ds, from, to) })
	if err := s.Optimize(ctx); err != nil {
		t.Fatal(err)
	}
	t.Run("after OPTIMIZE FINAL", func(t *testing.T) { compareRollups(t, s, ds, from, to) })

	// Late data for minutes already merged: more agents report into the
	// same minutes and the same dimensions.
	late := storetest.NewDataset(base, 360)
	for i := range late.Batches {
		b := &late.Batches[i]
		b.Agent = "late-" + b.Agent
		for j := range b.Points {
			b.Points[j].Node = "node-1"
		}
		b.ID = domain.BatchID(b.Agent, b.Start, b.Points)
	}
	for i := range late.Samples {
		late.Samples[i].Agent = "late-" + late.Samples[i].Agent
		late.Samples[i].P.Node = "node-1"
	}
	if err := s.Insert(ctx, late.Batches); err != nil {
		t.Fatal(err)
	}
	all := ds
	all.Samples = append(append([]storetest.Sample{}, ds.Samples...), late.Samples...)
	t.Run("late data before merge", func(t *testing.T) { compareRollups(t, s, all, from, to) })
	if err := s.Optimize(ctx); err != nil {
		t.Fatal(err)
	}
	t.Run("late data after merge", func(t *testing.T) { compareRollups(t, s, all, from, to) })
	// A rebuild from raw (the repair after a crash between an insert's raw
	// and view writes) restores the rollups.
	if err := s.LoseRollupDay(ctx, base); err != nil {
		t.Fatal(err)
	}
	q, _ := domain.NewStatisticsQuery("RequestCount", nil, from, to, 60, []string{"Sum"}, nil)
	if lost, err := s.StatisticsFrom(ctx, q, clickhouse.Table1m); err != nil || len(lost) != 0 {
		t.Fatalf("rollup day not lost: %d datapoints, %v", len(lost), err)
	}
	if err := s.RebuildRollups(ctx, base); err != nil {
		t.Fatal(err)
	}
	t.Run("after a rebuild from raw", func(t *testing.T) { compareRollups(t, s, all, from, to) })
	if err := s.Optimize(ctx); err != nil {
		t.Fatal(err)
	}
	n1m, err := s.CountRows(ctx, clickhouse.Table1m)
	if err != nil {
		t.Fatal(err)
	}
	// After the final merge every (minute, metric, dims, key) is one row.
	nRaw, _ := s.CountRows(ctx, clickhouse.TableRaw)
	if n1m == 0 || n1m*3 > nRaw {
		t.Fatalf("1-minute rollup has %d rows for %d raw rows; want about a sixth (merged)", n1m, nRaw)
	}
}

func TestRetentionDropsOldDayPartitions(t *testing.T) {
	srv := chtest.Start(t)
	s := open(t, srv.DSN)
	ctx := context.Background()
	old := storetest.NewDataset(time.Now().Add(-72*time.Hour), 12)
	cur := storetest.NewDataset(time.Now().Add(-time.Hour), 12)
	if err := s.Insert(ctx, append(append([]domain.Batch{}, old.Batches...), cur.Batches...)); err != nil {
		t.Fatal(err)
	}
	if err := s.DropBefore(ctx, time.Now().Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{clickhouse.TableRaw, clickhouse.Table1m, clickhouse.Table1h} {
		q, err := domain.NewStatisticsQuery("RequestCount", nil, old.Base.Truncate(time.Hour), old.Base.Truncate(time.Hour).Add(2*time.Hour), 3600, []string{"Sum"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.StatisticsFrom(ctx, q, table)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Fatalf("%s still has the dropped day: %v", table, got)
		}
	}
	storetest.CheckStatistics(t, s, cur, "RequestCount", nil, cur.Base, cur.Base.Add(2*time.Minute), 60)
}
