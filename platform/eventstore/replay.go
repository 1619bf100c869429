package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// RawEvent is one stored event as Replay finds it: the envelope's JSON
// undecoded, with what the commit's headers and subject tell for free.
type RawEvent struct {
	Sequence      uint64
	Time          time.Time // when the commit was stored
	AggregateType string
	AggregateID   string
	Type          string
	ProjectID     string
	JSON          []byte // the envelope, without sequence; valid only during the callback
}

// Envelope decodes the raw event's envelope (payload left raw).
func (r RawEvent) Envelope() (events.Envelope, error) {
	var e events.Envelope
	if err := json.Unmarshal(r.JSON, &e); err != nil {
		return e, &events.DecodeError{Type: r.Type, Err: fmt.Errorf("%w: envelope: %v", events.ErrMalformed, err)}
	}
	e.Sequence = r.Sequence
	return e, nil
}

// Replay delivers the envelopes matching f in stream order, payloads left
// undecoded (events.DecodeEnvelope decodes one) and Sequence set.
func (s *Store) Replay(ctx context.Context, f Filter, fn func(events.Envelope) error) error {
	return s.ReplayRaw(ctx, f, func(r RawEvent) error {
		e, err := r.Envelope()
		if err != nil {
			return fmt.Errorf("replay: event at %d: %w", r.Sequence, err)
		}
		return fn(e)
	})
}

// ReplayRaw is Replay without decoding: filters use the commit headers and
// subject, and the callback gets each envelope's JSON as stored. It is the
// fast path for audit streaming and bulk rebuilds.
func (s *Store) ReplayRaw(ctx context.Context, f Filter, fn func(RawEvent) error) error {
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
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		return nil // nothing matches: the iterator would wait forever
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
		if err := deliverCommit(m, seq, meta.Timestamp, f, fn); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
		if seq == last || meta.NumPending == 0 {
			return nil
		}
	}
}

// deliverCommit splits one commit and hands its matching events to fn.
func deliverCommit(m jetstream.Msg, seq uint64, ts time.Time, f Filter, fn func(RawEvent) error) error {
	parts, err := events.SplitCommit(m.Data())
	if err != nil {
		return fmt.Errorf("replay: commit %d: %w", seq, err)
	}
	aggType, aggID, err := events.ParseEventSubject(m.Subject())
	if err != nil {
		return fmt.Errorf("replay: commit %d: %w", seq, err)
	}
	h := m.Headers()
	types := strings.Split(h.Get(HeaderTypes), ",")
	project, ours := h.Get(HeaderProject), h.Get(HeaderTypes) != ""
	for i, p := range parts {
		r := RawEvent{Sequence: seq, Time: ts, AggregateType: aggType, AggregateID: aggID, ProjectID: project, JSON: p}
		if ours && len(types) == len(parts) {
			r.Type = types[i]
		} else {
			// A commit without our headers: read what filters need.
			e, err := r.Envelope()
			if err != nil {
				return fmt.Errorf("replay: commit %d: %w", seq, err)
			}
			r.Type, r.ProjectID = e.Type, e.ProjectID
		}
		if len(f.Types) > 0 && !slices.Contains(f.Types, r.Type) {
			continue
		}
		if f.ProjectID != "" && r.ProjectID != f.ProjectID {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
