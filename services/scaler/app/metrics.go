package app

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the scaler's Prometheus collectors.
type Metrics struct {
	Decisions *prometheus.CounterVec
	Samples   *prometheus.CounterVec
	Conflicts prometheus.Counter
	Managed   prometheus.Gauge
}

// NewMetrics builds the collectors and registers them with reg (nil: not
// registered, for tests). A collector already registered is reused.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elb_scaler_decisions_total", Help: "Scaling decisions appended, by action.",
		}, []string{"action"}),
		Samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elb_scaler_samples_total", Help: "Sample batches seen, by outcome (used, ignored, rejected).",
		}, []string{"outcome"}),
		Conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elb_scaler_append_conflicts_total", Help: "Appends retried after a concurrency conflict.",
		}),
		Managed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "elb_scaler_loadbalancers", Help: "Active load balancers under the scaler's watch.",
		}),
	}
	if reg != nil {
		m.Decisions = register(reg, m.Decisions)
		m.Samples = register(reg, m.Samples)
		m.Conflicts = register(reg, m.Conflicts)
		m.Managed = register(reg, m.Managed)
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
