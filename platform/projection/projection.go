// Package projection keeps an in-memory read model up to date with the event
// stream. A Projector replays the stream from the start with an ordered
// consumer (no server-side state: every replica rebuilds its own model on
// start-up) and then follows it. Wait gives read-your-writes: after an append
// at sequence s, Wait(ctx, s) returns once the model has applied s.
package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/follow"
	"github.com/nats-io/nats.go/jetstream"
)

// Apply is called for every event in stream order, from one goroutine. An
// error is logged and the event skipped: a read model must not stop on one
// bad event (the event log itself stays intact).
type Apply func(e events.Event) error

// Projector follows the event stream.
type Projector struct {
	js      jetstream.JetStream
	filters []string
	apply   Apply
	log     *slog.Logger

	mu      sync.Mutex
	pos     uint64
	waiters map[chan struct{}]uint64
	caught  chan struct{}
}

// New returns a projector over the subjects (all events when empty).
func New(js jetstream.JetStream, filterSubjects []string, apply Apply, log *slog.Logger) *Projector {
	if log == nil {
		log = slog.Default()
	}
	return &Projector{js: js, filters: filterSubjects, apply: apply, log: log,
		waiters: map[chan struct{}]uint64{}, caught: make(chan struct{})}
}

// Position is the last stream sequence applied.
func (p *Projector) Position() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pos
}

// CaughtUp is closed once the projector has applied everything that was in
// the stream when it started.
func (p *Projector) CaughtUp() <-chan struct{} { return p.caught }

// ErrWaitTimeout is returned when the model does not reach a sequence in time.
var ErrWaitTimeout = errors.New("read model did not catch up")

// Wait blocks until the model applied seq (or a later one), or ctx ends.
func (p *Projector) Wait(ctx context.Context, seq uint64) error {
	p.mu.Lock()
	if p.pos >= seq {
		p.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	p.waiters[ch] = seq
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		delete(p.waiters, ch)
		p.mu.Unlock()
		return fmt.Errorf("wait for sequence %d: %w", seq, ErrWaitTimeout)
	}
}

func (p *Projector) advance(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pos = seq
	for ch, want := range p.waiters {
		if seq >= want {
			close(ch)
			delete(p.waiters, ch)
		}
	}
}

// Run replays and follows the stream until ctx ends. It recreates its
// ordered consumer after bus errors and resumes after the last applied
// sequence.
func (p *Projector) Run(ctx context.Context) error {
	caught := sync.OnceFunc(func() { close(p.caught) })
	return follow.Run(ctx, p.js, follow.Config{
		Stream: events.EventStream, Filters: p.filters, Caught: caught, Log: p.log,
	}, func(m jetstream.Msg, meta *jetstream.MsgMetadata) {
		seq := meta.Sequence.Stream
		evs, err := events.UnmarshalCommit(m.Data())
		if err != nil {
			p.log.Error("projection skips undecodable commit", "seq", seq, "subject", m.Subject(), "err", err)
		}
		for _, e := range evs {
			e.Sequence = seq
			if err := p.apply(e); err != nil {
				p.log.Error("projection skips event", "seq", seq, "type", e.Type, "aggregate_id", e.AggregateID, "err", err)
			}
		}
		p.advance(seq)
	})
}
