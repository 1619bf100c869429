package ports_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/elbcloud/elb/services/stats/ports"
)

// TestMetricsPassPromtool renders the service's collectors in the text
// exposition format and has Debian's promtool lint them.
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	reg := prometheus.NewRegistry()
	ports.NewMetrics(reg)
	m := ports.NewMetrics(reg) // a restarted service registers again: no panic, same collectors
	m.IngestBatches.WithLabelValues("stored").Add(3)
	m.IngestSamples.Add(30)
	m.InsertSeconds.Observe(0.02)
	m.InsertSamples.Observe(30)
	m.Queries.WithLabelValues("statistics", "ok").Inc()
	m.QuerySeconds.WithLabelValues("statistics").Observe(0.003)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	text := buf.String()
	for _, name := range []string{"elb_stats_ingest_samples_total 30", "elb_stats_insert_seconds_bucket", "elb_stats_ingest_lag_seconds", "elb_stats_consumer_pending_messages"} {
		if !strings.Contains(text, name) {
			t.Fatalf("exposition lacks %q:\n%s", name, text)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
