package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrStop may be returned by a replay callback to end the replay early
// without an error.
var ErrStop = errors.New("stop replay")

// Filter selects events for Replay. Zero fields match everything. The range
// is fixed when the replay starts: events appended later are not included.
type Filter struct {
	FromSeq       uint64 // first stream sequence (inclusive)
	ToSeq         uint64 // last stream sequence (inclusive)
	Since, Until  time.Time
	AggregateType string
	AggregateID   string // needs AggregateType
	Types         []string
	ProjectID     string
}

// Validate rejects filters that cannot match anything sensible.
func (f Filter) Validate() error {
	if f.AggregateID != "" && f.AggregateType == "" {
		return fmt.Errorf("%w: aggregate id needs an aggregate type", ErrInvalidFilter)
	}
	if f.AggregateType != "" && !events.ValidToken(f.AggregateType) {
		return fmt.Errorf("%w: aggregate type %q", ErrInvalidFilter, f.AggregateType)
	}
	if f.AggregateID != "" && !events.ValidToken(f.AggregateID) {
		return fmt.Errorf("%w: aggregate id %q", ErrInvalidFilter, f.AggregateID)
	}
	if f.ToSeq != 0 && f.FromSeq > f.ToSeq {
		return fmt.Errorf("%w: from sequence %d after to sequence %d", ErrInvalidFilter, f.FromSeq, f.ToSeq)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return fmt.Errorf("%w: until before since", ErrInvalidFilter)
	}
	for _, t := range f.Types {
		if !events.Known(t) {
			return fmt.Errorf("%w: unknown event type %q", ErrInvalidFilter, t)
		}
	}
	return nil
}

// ErrInvalidFilter is returned for a replay filter that does not make sense.
var ErrInvalidFilter = errors.New("invalid replay filter")

// Replay delivers the envelopes matching f in stream order. Payloads are
// left undecoded (events.DecodeEnvelope decodes one); Sequence is set. A
// commit that cannot be decoded is reported as an error, not skipped.
func (s *Store) Replay(ctx context.Context, f Filter, fn func(events.Envelope) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	last := info.State.LastSeq
	if f.ToSeq != 0 && f.ToSeq < last {
		last = f.ToSeq
	}
	from := max(f.FromSeq, info.State.FirstSeq, 1)
	if last == 0 || from > last {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from}
	switch {
	case f.AggregateID != "":
		cfg.FilterSubjects = []string{events.EventSubject(f.AggregateType, f.AggregateID)}
	case f.AggregateType != "":
		cfg.FilterSubjects = []string{events.EventSubjectPrefix + f.AggregateType + ".>"}
	}
	if !f.Since.IsZero() && f.FromSeq == 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartSeq = 0
		since := f.Since
		cfg.OptStartTime = &since
	}
	cons, err := s.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer it.Stop()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-done:
		}
	}()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("replay: %w", err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		seq := meta.Sequence.Stream
		if seq > last {
			return nil
		}
		if !f.Until.IsZero() && meta.Timestamp.After(f.Until) {
			return nil
		}
		envs, err := events.UnmarshalCommitEnvelopes(m.Data())
		if err != nil {
			return fmt.Errorf("replay: commit %d: %w", seq, err)
		}
		for _, e := range envs {
			if len(f.Types) > 0 && !slices.Contains(f.Types, e.Type) {
				continue
			}
			if f.ProjectID != "" && e.ProjectID != f.ProjectID {
				continue
			}
			e.Sequence = seq
			if err := fn(e); err != nil {
				if errors.Is(err, ErrStop) {
					return nil
				}
				return err
			}
		}
		if seq == last || meta.NumPending == 0 {
			return nil
		}
	}
}
