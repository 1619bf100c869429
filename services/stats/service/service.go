// Package service wires the stats service: a store (ClickHouse when a DSN is
// configured, else the embedded store in the data dir), the JetStream ingest
// consumer, the NATS query responder and the retention schedule. `elb up`
// and cmd/stats both run it.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/elbcloud/elb/services/stats/adapters/clickhouse"
	"github.com/elbcloud/elb/services/stats/adapters/memstore"
	"github.com/elbcloud/elb/services/stats/app"
	"github.com/elbcloud/elb/services/stats/ports"
)

// ErrConfig is returned for an unusable configuration.
var ErrConfig = errors.New("stats config")

// Config configures the service.
type Config struct {
	// NATS is the service's connection (owned by the caller). Required.
	NATS *nats.Conn
	// JetStream defaults to jetstream.New(NATS).
	JetStream jetstream.JetStream
	// ClickHouseDSN selects the ClickHouse store
	// (clickhouse://host:9000/db). Empty selects the embedded store.
	ClickHouseDSN string
	// DataDir holds the embedded store's files. Required without a DSN.
	DataDir string
	// Retention is how long samples are kept. Default 15 days with
	// ClickHouse, 7 days embedded.
	Retention time.Duration
	// RetentionEvery is how often old partitions/days are dropped. Default 1 h.
	RetentionEvery time.Duration
	// MemMaxPoints bounds the embedded store (see memstore.Options).
	MemMaxPoints int
	// Registerer receives the service's Prometheus collectors (nil: none).
	Registerer prometheus.Registerer
	// Ingest and Responder tune the ports; zero values take defaults.
	Ingest    ports.IngestConfig
	Responder ports.ResponderConfig
	Logger    *slog.Logger
}

// Store is what the service needs from a store.
type Store interface {
	app.Store
	DropBefore(ctx context.Context, t time.Time) error
	Close() error
}

// Service is the running stats service.
type Service struct {
	cfg     Config
	log     *slog.Logger
	metrics *ports.Metrics
}

// New validates cfg.
func New(cfg Config) (*Service, error) {
	if cfg.NATS == nil {
		return nil, fmt.Errorf("%w: NATS connection required", ErrConfig)
	}
	if cfg.ClickHouseDSN == "" && cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: DataDir required for the embedded store (no ClickHouse DSN)", ErrConfig)
	}
	if cfg.JetStream == nil {
		js, err := jetstream.New(cfg.NATS)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		cfg.JetStream = js
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 7 * 24 * time.Hour
		if cfg.ClickHouseDSN != "" {
			cfg.Retention = 15 * 24 * time.Hour
		}
	}
	if cfg.RetentionEvery <= 0 {
		cfg.RetentionEvery = time.Hour
	}
	log := cfg.Logger.With("service", "stats")
	return &Service{cfg: cfg, log: log, metrics: ports.NewMetrics(cfg.Registerer)}, nil
}

// Run runs the service until ctx is cancelled. With ClickHouse it waits
// (retrying) until the server is reachable.
func (s *Service) Run(ctx context.Context) error {
	store, err := s.openStore(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer store.Close()

	icfg := s.cfg.Ingest
	icfg.Logger, icfg.Metrics = s.log, s.metrics
	rcfg := s.cfg.Responder
	rcfg.Logger, rcfg.Metrics = s.log, s.metrics
	ingest := ports.NewIngest(s.cfg.JetStream, store, icfg)
	responder := ports.NewResponder(s.cfg.NATS, app.NewQueries(store), rcfg)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errs <- fmt.Errorf("stats %s: %w", name, err)
				cancel()
			}
		}()
	}
	run("ingest", ingest.Run)
	run("responder", responder.Run)
	run("retention", func(ctx context.Context) error { s.retention(ctx, store); return nil })
	s.log.Info("stats service running", "store", s.storeName())
	wg.Wait()
	close(errs)
	return errors.Join(slicesOf(errs)...)
}

func slicesOf(ch <-chan error) []error {
	var out []error
	for e := range ch {
		out = append(out, e)
	}
	return out
}

func (s *Service) storeName() string {
	if s.cfg.ClickHouseDSN != "" {
		return "clickhouse"
	}
	return "embedded"
}

func (s *Service) openStore(ctx context.Context) (Store, error) {
	if s.cfg.ClickHouseDSN == "" {
		st, err := memstore.Open(s.cfg.DataDir, memstore.Options{Retention: s.cfg.Retention, MaxPoints: s.cfg.MemMaxPoints, Logger: s.log})
		if err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		return st, nil
	}
	delay := 500 * time.Millisecond
	for {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := clickhouse.Open(octx, s.cfg.ClickHouseDSN, s.log)
		cancel()
		if err == nil {
			return st, nil
		}
		if errors.Is(err, clickhouse.ErrConfig) {
			return nil, fmt.Errorf("stats: %w", err)
		}
		s.log.Warn("stats: clickhouse not reachable, retrying", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

func (s *Service) retention(ctx context.Context, store Store) {
	t := time.NewTicker(s.cfg.RetentionEvery)
	defer t.Stop()
	for {
		cut := time.Now().Add(-s.cfg.Retention)
		if err := store.DropBefore(ctx, cut); err != nil && ctx.Err() == nil {
			s.log.Warn("stats: retention", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
