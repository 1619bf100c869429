// Package apptest has test doubles for the app layer: an in-memory event
// store that applies every append to a read model synchronously, for fuzz
// tests and benchmarks that do not need the bus.
package apptest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
)

// MemStore is an in-memory event store with the eventstore.Store contract
// (optimistic concurrency per aggregate, idempotent command ids). Every
// append is passed to Apply before Append returns, so Wait never blocks.
type MemStore struct {
	Apply func(events.Event) error

	mu   sync.Mutex
	seq  uint64
	log  []events.Event
	aggs map[string][]events.Event
	cmds map[string]eventstore.AppendResult
}

// NewMemStore returns an empty store that feeds apply.
func NewMemStore(apply func(events.Event) error) *MemStore {
	return &MemStore{Apply: apply, aggs: map[string][]events.Event{}, cmds: map[string]eventstore.AppendResult{}}
}

// Load implements app.Store.
func (s *MemStore) Load(_ context.Context, aggType, aggID string) ([]events.Event, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.aggs[aggType+"."+aggID]
	return slices.Clone(h), uint64(len(h)), nil
}

// Append implements app.Store.
func (s *MemStore) Append(_ context.Context, aggType, aggID string, expected uint64, commandID string, evs ...events.Envelope) (eventstore.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := aggType + "." + aggID
	if r, ok := s.cmds[key+"/"+commandID]; ok && commandID != "" {
		r.Duplicate = true
		return r, nil
	}
	if len(evs) == 0 || !events.ValidToken(aggID) {
		return eventstore.AppendResult{}, eventstore.ErrInvalidAppend
	}
	if uint64(len(s.aggs[key])) != expected {
		return eventstore.AppendResult{}, fmt.Errorf("append %s: %w", key, eventstore.ErrConcurrency)
	}
	s.seq++
	for i, env := range evs {
		env.AggregateType, env.AggregateID = aggType, aggID
		env.AggregateVersion = expected + uint64(i) + 1
		env.Sequence = s.seq
		// Round-trip through the codec as the real store does.
		b, err := events.Marshal(env)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		var raw json.RawMessage = b
		ev, err := events.Unmarshal(raw)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("%w: %v", eventstore.ErrInvalidAppend, err)
		}
		ev.Sequence = s.seq
		s.aggs[key] = append(s.aggs[key], ev)
		s.log = append(s.log, ev)
		if s.Apply != nil {
			_ = s.Apply(ev)
		}
	}
	r := eventstore.AppendResult{Version: expected + uint64(len(evs)), Sequence: s.seq}
	if commandID != "" {
		s.cmds[key+"/"+commandID] = r
	}
	return r, nil
}

// ReplayRaw implements app.Store.
func (s *MemStore) ReplayRaw(ctx context.Context, f eventstore.Filter, fn func(eventstore.RawEvent) error) error {
	return s.Replay(ctx, f, func(e events.Envelope) error {
		b, err := events.Marshal(e)
		if err != nil {
			return err
		}
		return fn(eventstore.RawEvent{Sequence: e.Sequence, Time: e.OccurredAt, AggregateType: e.AggregateType,
			AggregateID: e.AggregateID, Type: e.Type, ProjectID: e.ProjectID, JSON: b})
	})
}

// Replay delivers matching envelopes (filters: aggregate, types, project,
// sequence, time).
func (s *MemStore) Replay(ctx context.Context, f eventstore.Filter, fn func(events.Envelope) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	log := slices.Clone(s.log)
	s.mu.Unlock()
	for _, e := range log {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case f.FromSeq != 0 && e.Sequence < f.FromSeq, f.ToSeq != 0 && e.Sequence > f.ToSeq,
			f.AggregateType != "" && e.AggregateType != f.AggregateType, f.AggregateID != "" && e.AggregateID != f.AggregateID,
			len(f.Types) > 0 && !slices.Contains(f.Types, e.Type), f.ProjectID != "" && e.ProjectID != f.ProjectID,
			!f.Since.IsZero() && e.OccurredAt.Before(f.Since), !f.Until.IsZero() && e.OccurredAt.After(f.Until):
			continue
		}
		if err := fn(e.Envelope); err != nil {
			if err == eventstore.ErrStop {
				return nil
			}
			return err
		}
	}
	return nil
}

// Wait implements app.Waiter: appends are applied synchronously.
func (s *MemStore) Wait(context.Context, uint64) error { return nil }

// AppendEvent appends one payload to an aggregate at its current version
// (test helper for what other services would append).
func (s *MemStore) AppendEvent(aggType, aggID string, data any, meta events.Meta) error {
	_, v, _ := s.Load(context.Background(), aggType, aggID)
	e, err := events.New(aggType, aggID, data, meta)
	if err != nil {
		return err
	}
	_, err = s.Append(context.Background(), aggType, aggID, v, "", e)
	return err
}
