package ports

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the stats service's own Prometheus collectors.
type Metrics struct {
	IngestBatches   *prometheus.CounterVec // by result: stored, invalid
	IngestSamples   prometheus.Counter
	InsertSeconds   prometheus.Histogram
	InsertSamples   prometheus.Histogram
	InsertErrors    prometheus.Counter
	IngestLag       prometheus.Gauge
	Queries         *prometheus.CounterVec // by kind, code
	QuerySeconds    *prometheus.HistogramVec
	ConsumerPending prometheus.Gauge
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered, e.g. in benchmarks).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		IngestBatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elb_stats_ingest_batches_total", Help: "Sample batches consumed, by result (stored, invalid).",
		}, []string{"result"}),
		IngestSamples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elb_stats_ingest_samples_total", Help: "Sample points handed to the store (duplicates included).",
		}),
		InsertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "elb_stats_insert_seconds", Help: "Latency of one store insert (one flush).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		InsertSamples: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "elb_stats_insert_samples", Help: "Sample points per store insert (flush size).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		InsertErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elb_stats_insert_errors_total", Help: "Failed store inserts (retried; nothing is acked before success).",
		}),
		IngestLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "elb_stats_ingest_lag_seconds", Help: "Age of the newest stored sample batch when it was stored.",
		}),
		Queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elb_stats_queries_total", Help: "Queries answered, by kind and result code.",
		}, []string{"kind", "code"}),
		QuerySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "elb_stats_query_seconds", Help: "Query latency by kind.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"kind"}),
		ConsumerPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "elb_stats_consumer_pending_messages", Help: "Sample batches waiting in JetStream for the ingest consumer.",
		}),
	}
	if reg != nil {
		m.IngestBatches = register(reg, m.IngestBatches)
		m.IngestSamples = register(reg, m.IngestSamples)
		m.InsertSeconds = register(reg, m.InsertSeconds)
		m.InsertSamples = register(reg, m.InsertSamples)
		m.InsertErrors = register(reg, m.InsertErrors)
		m.IngestLag = register(reg, m.IngestLag)
		m.Queries = register(reg, m.Queries)
		m.QuerySeconds = register(reg, m.QuerySeconds)
		m.ConsumerPending = register(reg, m.ConsumerPending)
	}
	return m
}

// register registers c, or returns the collector registered before under
// the same name (a service restarted in the same process keeps counting),
// never panicking.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
	}
	return c
}
