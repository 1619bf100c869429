// Package allocator is ELB's VIP allocator service: it owns the VIP pools and
// the LVS pairs, answers every ELBRequested with VIPAllocated or
// AllocationFailed, and returns VIPs when load balancers are deleted or their
// create is rolled back. See README.md.
package allocator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/elbcloud/elb/services/allocator/app"
	"github.com/elbcloud/elb/services/allocator/domain"
	"github.com/elbcloud/elb/services/allocator/ports"
	"github.com/nats-io/nats.go/jetstream"
)

// PoolSpec configures one VIP pool (re-exported for callers of Run).
type PoolSpec = domain.PoolSpec

// Pair is an LVS pair (re-exported for callers of Run).
type Pair = domain.Pair

// DefaultPools is the `elb up` pool: 127.100.0.0/24 without .0 and .255.
func DefaultPools() []PoolSpec { return domain.DefaultPools() }

// Config wires the allocator.
type Config struct {
	// JS is a JetStream context on a connection with service rights; the
	// topology (natsx.EnsureTopology) must exist.
	JS jetstream.JetStream
	// Pools are the VIP pools; empty means DefaultPools.
	Pools []PoolSpec
	// Pairs are registered at start-up (idempotent). LVS agents may also
	// register themselves with LVSPairRegistered events.
	Pairs []Pair
	// SweepInterval is how often allocations of gone load balancers are
	// released (a safety net; the first sweep runs at start-up). Default 1 min.
	SweepInterval time.Duration
	Logger        *slog.Logger
}

// ErrConfig is returned by Run for an unusable configuration.
var ErrConfig = errors.New("allocator config")

// Run serves until ctx is cancelled. It returns nil after a cancel.
func Run(ctx context.Context, cfg Config) error {
	err := run(ctx, cfg)
	if ctx.Err() != nil {
		return nil // a stop is not an error, whatever step it interrupted
	}
	return err
}

func run(ctx context.Context, cfg Config) error {
	if cfg.JS == nil {
		return fmt.Errorf("%w: JS is required", ErrConfig)
	}
	if len(cfg.Pools) == 0 {
		cfg.Pools = DefaultPools()
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", "allocator")
	store, err := newGuardedStore(ctx, cfg.JS)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("allocator: %w", err)
	}
	svc, err := app.New(store, cfg.Pools, log)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	for _, p := range cfg.Pairs {
		if err := svc.RegisterPair(ctx, p); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("allocator: %w", err)
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); sweepLoop(ctx, svc, cfg.SweepInterval, log) }()
	defer func() { <-done }() // ends with ctx: a restarted allocator never overlaps this one
	log.Info("allocator running", "pools", len(cfg.Pools))
	err = ports.NewFollower(svc, log).Run(ctx, cfg.JS)
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func sweepLoop(ctx context.Context, svc *app.Service, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := svc.Sweep(ctx); err != nil && ctx.Err() == nil {
			log.Warn("vip sweep failed", "err", err)
		} else if n > 0 {
			log.Info("vip sweep released leaked addresses", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RegisterPair records an LVS pair through a store (for `elb up` and tools
// that register pairs outside Run).
func RegisterPair(ctx context.Context, js jetstream.JetStream, p Pair) error {
	store, err := newGuardedStore(ctx, js)
	if err != nil {
		return err
	}
	svc, err := app.New(store, DefaultPools(), nil)
	if err != nil {
		return err
	}
	return svc.RegisterPair(ctx, p)
}
