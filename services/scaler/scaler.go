// Package scaler is ELB's capacity service: it watches the L7 load of every
// load balancer's tengine nodes (agent samples) and appends ScaleOutDecided
// (+20%, rounded up, at least one node, every cooldown while under load) and
// ScaleInDecided (one node at a time when idle, naming the node to drain) on
// the load balancer aggregate. The provisioner acts on them. See README.md.
package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/follow"
	"github.com/elbcloud/elb/platform/projection"
	"github.com/elbcloud/elb/services/scaler/app"
	"github.com/elbcloud/elb/services/scaler/domain"
	"github.com/elbcloud/elb/services/scaler/ports"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Policy is the capacity policy (re-exported for callers of Run).
type Policy = domain.Policy

// DefaultPolicy is the policy of load balancers that set nothing.
func DefaultPolicy() Policy { return domain.DefaultPolicy() }

// ErrConfig is returned by Run for an unusable configuration.
var ErrConfig = errors.New("scaler config")

// Config wires the scaler.
type Config struct {
	// JS is a JetStream context with service rights; the topology
	// (natsx.EnsureTopology) must exist. When nil, one is made from NC.
	JS jetstream.JetStream
	NC *nats.Conn
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock defaults to time.Now; tests inject a fake one. Sample times,
	// windows and cooldowns are all measured on it.
	Clock func() time.Time
	// Policy is the default policy; nil means DefaultPolicy(). A load
	// balancer's spec (min/max_l7_nodes) and ScalePolicySet override it.
	Policy *Policy
	// EvalInterval is how often every load balancer is evaluated.
	// Default 10 s (the agents' sample interval).
	EvalInterval time.Duration
	// Registerer receives the Prometheus collectors; nil skips them.
	Registerer prometheus.Registerer

	// tickHook, when set, is called after every evaluation (tests).
	tickHook func(decisions int)
}

// Run serves until ctx is cancelled and returns nil then, or the first
// set-up error.
func Run(ctx context.Context, cfg Config) error {
	if cfg.JS == nil && cfg.NC != nil {
		js, err := jetstream.New(cfg.NC)
		if err != nil {
			return fmt.Errorf("%w: jetstream: %w", ErrConfig, err)
		}
		cfg.JS = js
	}
	if cfg.JS == nil {
		return fmt.Errorf("%w: JS or NC is required", ErrConfig)
	}
	pol := domain.DefaultPolicy()
	if cfg.Policy != nil {
		pol = *cfg.Policy
	}
	if cfg.EvalInterval <= 0 {
		cfg.EvalInterval = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", "scaler")
	store, err := eventstore.New(ctx, cfg.JS)
	if err != nil {
		return fmt.Errorf("scaler: %w", err)
	}
	svc, err := app.New(store, pol, cfg.Clock, log, app.NewMetrics(cfg.Registerer))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}

	// Every goroutine has stopped when Run returns (wg.Wait runs after
	// cancel: deferred calls run in reverse order).
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 8)
	spawn := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- f()
		}()
	}
	proj := projection.New(cfg.JS, []string{
		events.EventSubjectPrefix + events.AggLoadBalancer + ".>",
		events.EventSubjectPrefix + events.AggScalePolicy + ".>",
	}, svc.ApplyEvent, log)
	spawn(func() error { return proj.Run(ctx) })
	// The samples are read once the load balancers are known (samples of
	// unknown nodes are dropped), and evaluation starts once the windows
	// were refilled.
	wait := func(ready <-chan struct{}) (bool, error) {
		select {
		case <-ready:
			return true, nil
		case err := <-errc:
			if err != nil {
				return false, fmt.Errorf("scaler: %w", err)
			}
			return true, nil
		case <-ctx.Done():
			return false, nil
		}
	}
	if ok, err := wait(proj.CaughtUp()); !ok {
		return err
	}
	// Samples are read with an ordered consumer from one window back: a
	// restarted scaler rebuilds its windows at once, and nothing is acked
	// (docs/decisions/0602).
	samplesReady := make(chan struct{})
	spawn(func() error {
		return follow.Run(ctx, cfg.JS, follow.Config{
			Stream: events.SampleStream, Filters: []string{events.AgentSubjectPrefix + "*." + events.ReportSamples},
			Policy: jetstream.DeliverByStartTimePolicy, StartTime: time.Now().Add(-pol.Window), // stream time is wall time
			Caught: func() { close(samplesReady) }, Log: log,
		}, func(m jetstream.Msg, _ *jetstream.MsgMetadata) {
			if err := ports.HandleSamples(svc, m.Subject(), m.Data()); err != nil {
				log.Debug("sample batch ignored", "subject", m.Subject(), "err", err)
			}
		})
	})
	if ok, err := wait(samplesReady); !ok {
		return err
	}
	log.Info("scaler running", "eval_interval", cfg.EvalInterval, "cooldown", pol.Cooldown, "window", pol.Window)
	t := time.NewTicker(cfg.EvalInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("scaler: %w", err)
			}
		case <-t.C:
			n, err := svc.Tick(ctx)
			if err != nil && ctx.Err() == nil {
				log.Warn("scaling evaluation failed", "err", err)
			}
			if cfg.tickHook != nil {
				cfg.tickHook(n)
			}
		}
	}
}

// SetPolicy appends a ScalePolicySet for a load balancer (validated against
// the default policy) through the event store on js.
func SetPolicy(ctx context.Context, js jetstream.JetStream, p events.ScalePolicySet, meta events.Meta) error {
	store, err := eventstore.New(ctx, js)
	if err != nil {
		return fmt.Errorf("set scale policy: %w", err)
	}
	return app.SetPolicy(ctx, store, domain.DefaultPolicy(), p, meta)
}
