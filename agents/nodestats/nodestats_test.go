package nodestats

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
)

func writeProc(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func byMetric(pts []events.SamplePoint) map[string]float64 {
	m := map[string]float64{}
	for _, p := range pts {
		m[p.Metric] = p.Sum
	}
	return m
}

func TestCollectorComputesDeltasAndStateCounts(t *testing.T) {
	dir := t.TempDir()
	tcp := "  sl  local_address rem_address   st\n" +
		"   0: 0100007F:1F90 00000000:0000 0A 0\n" +
		"   1: 0100007F:1F90 0100007F:D431 01 0\n" +
		"   2: 0100007F:1F90 0100007F:D432 01 0\n" +
		"   3: 0100007F:1F90 0100007F:D433 08 0\n"
	writeProc(t, dir, map[string]string{
		"stat":    "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n",
		"meminfo": "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n",
		"net/dev": "Inter-|   Receive\n face |bytes\n    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0\n  eth0: 1000 1 0 0 0 0 0 0 500 1 0 0 0 0 0 0\n",
		"net/tcp": tcp,
	})
	c := newCollector("n1", dir)
	first := byMetric(c.Collect(time.Now()))
	if _, ok := first[events.MetricNodeCPUUtilization]; ok {
		t.Fatal("first collect must only prime counters")
	}
	if first[events.MetricNodeMemoryUtilization] != 75 {
		t.Fatalf("memory %v, want 75", first[events.MetricNodeMemoryUtilization])
	}
	if first[events.MetricNodeTCPEstablished] != 2 || first[events.MetricNodeTCPCloseWait] != 1 {
		t.Fatalf("tcp states %v", first)
	}
	writeProc(t, dir, map[string]string{
		"stat":    "cpu  150 0 150 900 0 0 0 0 0 0\n",
		"net/dev": "  eth0: 3000 1 0 0 0 0 0 0 600 1 0 0 0 0 0 0\n",
	})
	second := byMetric(c.Collect(time.Now()))
	if got := second[events.MetricNodeCPUUtilization]; got != 50 {
		t.Fatalf("cpu %v, want 50", got)
	}
	if second[events.MetricNodeNetworkIn] != 2000 || second[events.MetricNodeNetworkOut] != 100 {
		t.Fatalf("net %v", second)
	}
}

func TestCollectorReadsTheRealProc(t *testing.T) {
	c := New("n1")
	c.Collect(time.Now())
	pts := c.Collect(time.Now())
	for _, p := range pts {
		if !events.KnownMetric(p.Metric) || p.Dimensions[events.DimNode] != "n1" {
			t.Fatalf("bad point %+v", p)
		}
	}
	if len(pts) == 0 {
		t.Fatal("no points from /proc")
	}
}
