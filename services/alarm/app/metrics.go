package app

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the alarm service's Prometheus collectors.
type Metrics struct {
	Transitions   *prometheus.CounterVec
	Active        prometheus.Gauge
	Notifications *prometheus.CounterVec
	Samples       *prometheus.CounterVec
	Evaluations   prometheus.Counter
}

// NewMetrics builds the collectors and registers them with reg (nil: not
// registered). A collector already registered is reused.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elb_alarm_transitions_total", Help: "Alarms raised and resolved, by rule.",
		}, []string{"rule", "transition"}),
		Active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "elb_alarm_active", Help: "Alarms currently raised.",
		}),
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elb_alarm_notifications_total", Help: "Notifications by channel and outcome (sent, failed, silenced).",
		}, []string{"channel", "outcome"}),
		Samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elb_alarm_sample_batches_total", Help: "Sample batches evaluated, by outcome.",
		}, []string{"outcome"}),
		Evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elb_alarm_evaluations_total", Help: "Evaluation ticks (agent liveness, real-server health) completed.",
		}),
	}
	if reg != nil {
		m.Transitions = register(reg, m.Transitions)
		m.Active = register(reg, m.Active)
		m.Notifications = register(reg, m.Notifications)
		m.Samples = register(reg, m.Samples)
		m.Evaluations = register(reg, m.Evaluations)
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
