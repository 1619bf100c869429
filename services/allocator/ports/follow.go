package ports

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/projection"
	"github.com/elbcloud/elb/services/allocator/app"
	"github.com/nats-io/nats.go/jetstream"
)

// Follower keeps, from the event log, the set of load balancers that wait for
// a VIP and of those whose VIP may have to go back, and works both sets off.
// It replays the log at start-up (an ordered consumer, no server-side state),
// so whatever a crashed allocator left undone is found again; no per-message
// acknowledgement is needed because the decisions are idempotent and made
// from the sets, not from single deliveries.
type Follower struct {
	svc *app.Service
	log *slog.Logger

	mu       sync.Mutex
	pending  map[string]events.Envelope // lb → its ELBRequested
	releases map[string]events.Envelope // lb → the event that may free its VIP
	wake     chan struct{}
}

// NewFollower returns a follower for svc.
func NewFollower(svc *app.Service, log *slog.Logger) *Follower {
	return &Follower{svc: svc, log: log, pending: map[string]events.Envelope{}, releases: map[string]events.Envelope{}, wake: make(chan struct{}, 1)}
}

// Apply folds one event (projection callback; one goroutine).
func (f *Follower) Apply(e events.Event) error {
	if e.AggregateType != events.AggLoadBalancer {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch e.Type {
	case events.TypeELBRequested:
		f.pending[e.AggregateID] = e.Envelope
	case events.TypeVIPAllocated, events.TypeELBDeleteRequested:
		delete(f.pending, e.AggregateID)
	case events.TypeAllocationFailed, events.TypeELBFailed, events.TypeELBDeleted:
		delete(f.pending, e.AggregateID)
		f.releases[e.AggregateID] = e.Envelope
	default:
		return nil
	}
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

func (f *Follower) take(m map[string]events.Envelope) []events.Envelope {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]events.Envelope, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sequence < out[j].Sequence })
	return out
}

func (f *Follower) done(m map[string]events.Envelope, e events.Envelope) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cur, ok := m[e.AggregateID]; ok && cur.ID == e.ID {
		delete(m, e.AggregateID)
	}
}

// Run follows the log and works the sets until ctx ends. Work starts once
// the replay has caught up, so requests settled later in the history are not
// looked at twice.
func (f *Follower) Run(ctx context.Context, js jetstream.JetStream) error {
	p := projection.New(js, nil, f.Apply, f.log)
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	select {
	case <-ctx.Done():
		return <-errc
	case <-p.CaughtUp():
	}
	for {
		batch := f.take(f.pending)
		for len(batch) > 0 {
			n := min(len(batch), maxBatch)
			errs := f.svc.AllocateBatch(ctx, batch[:n])
			if ctx.Err() != nil {
				return <-errc
			}
			for _, e := range batch[:n] {
				if err := errs[e.AggregateID]; err != nil {
					f.log.Warn("allocation failed; retrying", "loadbalancer", e.AggregateID, "err", err)
					continue
				}
				f.done(f.pending, e)
			}
			batch = batch[n:]
		}
		for _, e := range f.take(f.releases) {
			if err := f.svc.ReleaseIfDone(ctx, e); err != nil {
				if ctx.Err() != nil {
					return <-errc
				}
				f.log.Warn("release failed; retrying", "loadbalancer", e.AggregateID, "err", err)
				continue
			}
			f.done(f.releases, e)
		}
		var retry <-chan time.Time
		if f.left() > 0 {
			retry = time.After(retryInterval)
		}
		select {
		case <-ctx.Done():
			return <-errc
		case <-f.wake:
		case <-retry:
		}
	}
}

// maxBatch bounds how many requests are decided and appended together.
const maxBatch = 64

// retryInterval is how soon work left over by a failed attempt is retried.
const retryInterval = 500 * time.Millisecond

func (f *Follower) left() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending) + len(f.releases)
}
