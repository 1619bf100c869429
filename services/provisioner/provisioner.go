// Package provisioner is ELB's provisioning service: it turns ELBRequested
// into a load balancer that carries traffic (tengine nodes through a compute
// driver, desired data-plane config per node, agents' confirmation) and back,
// with a deadline on every step and a rollback of everything on failure. See
// README.md.
package provisioner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/consumer"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/provisioner/adapters"
	"github.com/elbcloud/elb/services/provisioner/app"
	"github.com/elbcloud/elb/services/provisioner/compute"
	"github.com/elbcloud/elb/services/provisioner/domain"
	"github.com/elbcloud/elb/services/provisioner/ports"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Deadlines bound every workflow step (zero fields take the defaults:
// allocate 30 s, VM ready 120 s, config applied 30 s, delete 120 s, whole
// create = the sum + 30 s unless ELBRequested carries a deadline).
type Deadlines struct {
	Allocate      time.Duration
	VMReady       time.Duration
	ConfigApplied time.Duration
	Delete        time.Duration
	Create        time.Duration
}

// Config wires the provisioner.
type Config struct {
	// JS and NC are a service connection; the topology must exist.
	JS jetstream.JetStream
	NC *nats.Conn
	// Driver builds tengine nodes (compute/local or compute/openstack).
	Driver compute.Driver
	// Deadlines of the workflow steps.
	Deadlines Deadlines
	// Flavor and Image go into VMRequested (driver defaults when empty).
	Flavor, Image string
	// WarmPool is how many idle tengine nodes to keep booted (0: none).
	WarmPool int
	// NodeLostAfter declares a serving tengine node lost (NodeLost, then a
	// replacement) when its agent sent no heartbeat for this long. Zero
	// disables the watch (drivers whose nodes do not heartbeat).
	NodeLostAfter time.Duration
	// Workers and Tick tune the reconciler (defaults 8 and 500 ms).
	Workers int
	Tick    time.Duration
	// SweepInterval is how often orphan nodes are looked for (default 1 min;
	// the first sweep runs at start-up).
	SweepInterval time.Duration
	Logger        *slog.Logger
}

// ErrConfig is returned by Run for an unusable configuration.
var ErrConfig = errors.New("provisioner config")

// Run serves until ctx is cancelled and returns nil after a cancel. Agent
// processes and VMs are not stopped on return: a restarted provisioner
// adopts them.
func Run(ctx context.Context, cfg Config) error {
	err := run(ctx, cfg)
	if ctx.Err() != nil {
		return nil // a stop is not an error, whatever step it interrupted
	}
	return err
}

func run(ctx context.Context, cfg Config) error {
	if cfg.JS == nil || cfg.NC == nil || cfg.Driver == nil {
		return fmt.Errorf("%w: JS, NC and Driver are required", ErrConfig)
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", "provisioner")
	store, err := eventstore.New(ctx, cfg.JS)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("provisioner: %w", err)
	}
	desired, err := adapters.NewDesired(ctx, cfg.JS)
	if err != nil {
		return fmt.Errorf("provisioner: %w", err)
	}
	reports, err := adapters.NewReports(ctx, cfg.JS)
	if err != nil {
		return fmt.Errorf("provisioner: %w", err)
	}
	pol := domain.Policy{AllocateTimeout: cfg.Deadlines.Allocate, VMReadyTimeout: cfg.Deadlines.VMReady, ApplyTimeout: cfg.Deadlines.ConfigApplied,
		DeleteTimeout: cfg.Deadlines.Delete, CreateTimeout: cfg.Deadlines.Create, Flavor: cfg.Flavor, Image: cfg.Image}.WithDefaults()
	var warm *app.WarmPool
	if cfg.WarmPool > 0 {
		warm = app.NewWarmPool(store, cfg.Driver, cfg.WarmPool, pol.VMReadyTimeout, log)
	}
	rec := app.New(app.Config{Store: store, Desired: desired, Reports: reports, Driver: cfg.Driver, Policy: pol,
		Workers: cfg.Workers, Tick: cfg.Tick, Warm: warm, Heartbeats: reports, NodeLostAfter: cfg.NodeLostAfter, Logger: log})

	// Start-up: delete orphans and bring back local nodes; ports.Follow then
	// replays the log and resumes every workflow that is not finished (its
	// deadlines still hold).
	if n, err := rec.SweepOrphans(ctx); err != nil {
		log.Warn("orphan sweep failed", "err", err)
	} else if n > 0 {
		log.Info("orphan nodes deleted", "count", n)
	}
	if rv, ok := cfg.Driver.(compute.Recoverer); ok {
		if err := rv.Recover(ctx); err != nil {
			log.Warn("recovering nodes", "err", err)
		}
	}
	log.Info("provisioner running", "warm_pool", cfg.WarmPool)

	sub, err := ports.SubscribeReports(cfg.NC, rec)
	if err != nil {
		return fmt.Errorf("provisioner: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	errc := make(chan error, 1)
	go func() { errc <- ports.Follow(ctx, cfg.JS, rec, log) }()
	healthc := make(chan error, 1)
	go func() {
		healthc <- consumer.Run(ctx, cfg.JS, consumer.Config{
			Name: "provisioner-health", Stream: events.ReportStream, DeliverNew: true,
			FilterSubjects: []string{events.AgentSubjectPrefix + "*." + events.ReportHealth}, Logger: log,
		}, app.NewHealthRecorder(store, log).Handle)
	}()
	// Everything started here ends before Run returns, so a restarted
	// provisioner never overlaps the previous one.
	var bg sync.WaitGroup
	if warm != nil {
		bg.Add(1)
		go func() { defer bg.Done(); warm.Run(ctx) }()
	}
	bg.Add(1)
	go func() {
		defer bg.Done()
		t := time.NewTicker(cfg.SweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := rec.SweepOrphans(ctx); err != nil && ctx.Err() == nil {
					log.Warn("orphan sweep failed", "err", err)
				}
			}
		}
	}()
	defer bg.Wait()
	runErr := rec.Run(ctx)
	cerr := <-errc
	herr := <-healthc
	return errors.Join(runErr, cerr, herr)
}
