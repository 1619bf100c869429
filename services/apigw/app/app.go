// Package app holds the gateway's command and query handlers: each command
// loads the load balancer aggregate, lets it decide, appends the events with
// optimistic concurrency and waits (bounded) until the read model has seen
// them, so that a client reads its own writes.
package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/apigw/auth"
	"github.com/elbcloud/elb/services/apigw/domain"
	"github.com/elbcloud/elb/services/apigw/readmodel"
)

// ErrQuotaExceeded is returned when a create would go over the project's quota.
var ErrQuotaExceeded = errors.New("quota exceeded")

// ErrBusy is returned when a command kept conflicting with concurrent changes.
var ErrBusy = errors.New("load balancer changed concurrently; retry")

// Store is the part of the event store the gateway uses.
type Store interface {
	Load(ctx context.Context, aggType, aggID string) ([]events.Event, uint64, error)
	Append(ctx context.Context, aggType, aggID string, expected uint64, commandID string, evs ...events.Envelope) (eventstore.AppendResult, error)
	ReplayRaw(ctx context.Context, f eventstore.Filter, fn func(eventstore.RawEvent) error) error
}

// Waiter blocks until the read model has applied a stream sequence.
type Waiter interface {
	Wait(ctx context.Context, seq uint64) error
}

// Options tune a Service.
type Options struct {
	// DefaultQuotas are the limits of projects without explicit quotas
	// (kind → limit, -1 unlimited). Missing kinds are unlimited.
	DefaultQuotas map[string]int
	// ProvisionTimeout is the deadline given to the provisioner for a
	// create, update, failover or delete workflow.
	ProvisionTimeout time.Duration
	// WaitTimeout bounds how long a command waits for the read model.
	WaitTimeout time.Duration
	Logger      *slog.Logger
}

// Service runs commands and queries.
type Service struct {
	store Store
	model *readmodel.Model
	wait  Waiter
	stats Stats
	opt   Options
	log   *slog.Logger
	now   func() time.Time
	newID func() string
}

// New returns a Service.
func New(store Store, model *readmodel.Model, wait Waiter, stats Stats, opt Options) *Service {
	if opt.ProvisionTimeout == 0 {
		opt.ProvisionTimeout = 10 * time.Minute
	}
	if opt.WaitTimeout == 0 {
		opt.WaitTimeout = 5 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if stats == nil {
		stats = noStats{}
	}
	return &Service{store: store, model: model, wait: wait, stats: stats, opt: opt, log: opt.Logger,
		now: time.Now, newID: events.NewID}
}

// Model is the read model queries use.
func (s *Service) Model() *readmodel.Model { return s.model }

// Cmd is who runs a command and how to recognise its retries.
type Cmd struct {
	P auth.Principal
	// Admin is true when the principal is admin and the request came from
	// an admin network: only then do admin powers apply.
	Admin bool
	// IdempotencyKey, when set, makes the command idempotent: its retries
	// append nothing and return the resource the first attempt created.
	IdempotencyKey string
	// Scope distinguishes commands with the same key (method and path).
	Scope         string
	CorrelationID string
	// TargetProject is the project a new load balancer is created in (an
	// admin may create in another project); empty means the caller's.
	TargetProject string
}

func (c Cmd) target() string {
	if c.TargetProject != "" {
		return c.TargetProject
	}
	return c.P.Project
}

// Project is the project the command acts in.
func (c Cmd) Project() string { return c.P.Project }

// ScopeProject is the project whose resources the caller sees: its own, or
// all ("") for an effective admin.
func (c Cmd) ScopeProject() string {
	if c.Admin {
		return ""
	}
	return c.P.Project
}

func (c Cmd) hash(part string) string {
	h := sha256.Sum256([]byte(c.P.Project + "\x00" + c.Scope + "\x00" + c.IdempotencyKey + "\x00" + part))
	return hex.EncodeToString(h[:16])
}

// commandID is the event store's idempotency key (Nats-Msg-Id).
func (c Cmd) commandID() string {
	if c.IdempotencyKey == "" {
		return ""
	}
	return "idem-" + c.hash("command")
}

// resourceID derives a new resource's id: from the idempotency key, so a
// retry names the same resource, or random.
func (s *Service) resourceID(c Cmd) string {
	if c.IdempotencyKey == "" {
		return s.newID()
	}
	h := c.hash("resource")
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

func (s *Service) canWrite(c Cmd) error {
	if !c.P.CanWrite() {
		return fmt.Errorf("role %s may not change resources: %w", c.P.Role, auth.ErrForbidden)
	}
	return nil
}

// owned finds the load balancer a resource belongs to, if the caller may
// see it; otherwise the resource is not found.
func (s *Service) owned(c Cmd, kind, id string) (string, error) {
	if !domain.ValidID(id) {
		return "", fmt.Errorf("%s %q: %w", kind, id, domain.ErrNotFound)
	}
	lbID, project, ok := s.model.Owner(kind, id)
	if !ok || (!c.Admin && project != c.P.Project) {
		return "", fmt.Errorf("%s %s: %w", kind, id, domain.ErrNotFound)
	}
	return lbID, nil
}

// exec runs one command against a load balancer aggregate: load, decide,
// append with the loaded version, retry on a concurrency conflict, then wait
// for the read model. decide returning no events is a no-op (an idempotent
// retry): exec then waits for the aggregate's last event instead.
func (s *Service) exec(ctx context.Context, c Cmd, lbID string, decide func(lb *domain.LoadBalancer) ([]any, error)) error {
	cmdID := c.commandID()
	for attempt := 0; attempt < 8; attempt++ {
		hist, version, err := s.store.Load(ctx, events.AggLoadBalancer, lbID)
		if err != nil {
			return fmt.Errorf("load load balancer %s: %w", lbID, err)
		}
		lb := domain.Rebuild(lbID, hist)
		if lb.Version() > 0 && !c.Admin && lb.Project() != c.P.Project {
			return fmt.Errorf("load balancer %s: %w", lbID, domain.ErrNotFound)
		}
		payloads, err := decide(lb)
		if err != nil {
			return err
		}
		if len(payloads) == 0 {
			s.waitFor(ctx, lb.LastSequence())
			return nil
		}
		project := lb.Project()
		if project == "" {
			project = c.target()
		}
		meta := events.Meta{Actor: c.P.User, ProjectID: project, CorrelationID: c.CorrelationID}
		envs := make([]events.Envelope, 0, len(payloads))
		for _, p := range payloads {
			e, err := events.New(events.AggLoadBalancer, lbID, p, meta)
			if err != nil {
				return fmt.Errorf("build event: %w", err)
			}
			envs = append(envs, e)
		}
		res, err := s.store.Append(ctx, events.AggLoadBalancer, lbID, version, cmdID, envs...)
		if errors.Is(err, eventstore.ErrConcurrency) {
			s.log.Debug("concurrent change; retrying", "aggregate_id", lbID, "attempt", attempt, "correlation_id", c.CorrelationID)
			continue
		}
		if err != nil {
			return fmt.Errorf("append to load balancer %s: %w", lbID, err)
		}
		s.log.Info("command appended", "aggregate_id", lbID, "events", len(envs), "version", res.Version,
			"sequence", res.Sequence, "duplicate", res.Duplicate, "actor", c.P.User, "correlation_id", c.CorrelationID)
		s.waitFor(ctx, res.Sequence)
		return nil
	}
	return fmt.Errorf("load balancer %s: %w", lbID, ErrBusy)
}

func (s *Service) waitFor(ctx context.Context, seq uint64) {
	if seq == 0 || s.wait == nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, s.opt.WaitTimeout)
	defer cancel()
	if err := s.wait.Wait(wctx, seq); err != nil {
		s.log.Warn("read model lags behind a write", "sequence", seq, "err", err)
	}
}

func (s *Service) deadline() time.Time { return s.now().UTC().Add(s.opt.ProvisionTimeout) }
