package memstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/elbcloud/elb/services/stats/adapters/memstore"
	"github.com/elbcloud/elb/services/stats/app"
	"github.com/elbcloud/elb/services/stats/domain"
	"github.com/elbcloud/elb/services/stats/storetest"
)

func open(t *testing.T, dir string) *memstore.Store {
	t.Helper()
	s, err := memstore.Open(dir, memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestMemstoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) app.Store { return open(t, t.TempDir()) })
}

func TestMemstoreSurvivesRestartWithATornTail(t *testing.T) {
	dir := t.TempDir()
	ds := storetest.NewDataset(time.Now().Add(-time.Hour), 30)
	s := open(t, dir)
	if err := s.Insert(context.Background(), ds.Batches); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	// A crash in the middle of an append leaves half a line.
	files, _ := filepath.Glob(filepath.Join(dir, "samples-*.jsonl"))
	if len(files) == 0 {
		t.Fatal("no data files")
	}
	f, err := os.OpenFile(files[len(files)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"id":1,"agent":"x","start":`)
	_ = f.Close()

	s2 := open(t, dir)
	// Redelivered batches after the restart are not stored twice.
	if err := s2.Insert(context.Background(), ds.Batches[:10]); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"RequestCount", "Latency"} {
		storetest.CheckStatistics(t, s2, ds, m, nil, ds.Base, ds.Base.Add(5*time.Minute), 60)
	}
	_ = s2.Close()
	s3 := open(t, dir)
	storetest.CheckStatistics(t, s3, ds, "RequestCount", nil, ds.Base, ds.Base.Add(5*time.Minute), 10)
}

func TestMemstoreDropsDaysBeyondRetention(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	old := storetest.NewDataset(time.Now().Add(-72*time.Hour), 6)
	cur := storetest.NewDataset(time.Now().Add(-time.Hour), 6)
	if err := s.Insert(context.Background(), append(old.Batches, cur.Batches...)); err != nil {
		t.Fatal(err)
	}
	if err := s.DropBefore(context.Background(), time.Now().Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	q, err := domain.NewStatisticsQuery("RequestCount", nil, old.Base, old.Base.Add(time.Hour), 60, []string{"Sum"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Statistics(context.Background(), q)
	if len(got) != 0 {
		t.Fatalf("old day still answers: %v", got)
	}
	storetest.CheckStatistics(t, s, cur, "RequestCount", nil, cur.Base, cur.Base.Add(time.Hour), 60)
	files, _ := filepath.Glob(filepath.Join(dir, "samples-*.jsonl"))
	oldName := filepath.Join(dir, fmt.Sprintf("samples-%d.jsonl", old.Base.Unix()/86400))
	if _, err := os.Stat(oldName); !os.IsNotExist(err) || len(files) == 0 {
		t.Fatalf("files after retention: %v (old file %s: %v)", files, oldName, err)
	}
}
