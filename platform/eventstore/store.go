// Package eventstore is ELB's event store on NATS JetStream.
//
// Every aggregate has its own subject (events.EventSubject). One append is one
// JetStream message (a commit) holding one or more events of one aggregate, so
// a multi-event append is atomic. Optimistic concurrency uses JetStream's
// expected-last-sequence-per-subject check; idempotency uses Nats-Msg-Id with
// the command id, plus a scan of the aggregate's newer commits when a retried
// append arrives with an expected version that has gone stale.
package eventstore

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrConcurrency is returned when an aggregate changed after the caller read
// it: the expected version is not the current one. Reload and decide again.
var ErrConcurrency = errors.New("concurrency conflict")

// ErrInvalidAppend is returned for an append that can never succeed (no
// events, unknown event type, bad aggregate id).
var ErrInvalidAppend = errors.New("invalid append")

// Header names on commit messages.
const (
	HeaderVersion = "Elb-Version" // aggregate version after the commit
	HeaderCount   = "Elb-Count"   // events in the commit
	HeaderTypes   = "Elb-Types"   // comma-separated event types
	HeaderProject = "Elb-Project" // project of the command that appended
)

// Store appends and reads events. It is safe for concurrent use.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream

	mu    sync.Mutex
	cache map[string]*list.Element // subject → *cached
	lru   *list.List
	limit int
}

// cached is what the store remembers of one aggregate: its head (last commit
// known, used by Append) and the history loaded so far (used by Load), which
// may end before the head.
type cached struct {
	subject string
	seq     uint64 // head: stream sequence of the last known commit
	version uint64 // head: aggregate version after it
	histSeq uint64 // history: evs hold every event up to this sequence
	evs     []events.Event
}

// Option configures a Store.
type Option func(*Store)

// WithCacheSize bounds how many aggregates' histories are kept in memory.
func WithCacheSize(n int) Option { return func(s *Store) { s.limit = n } }

// New opens the store on the event stream, which must exist (see
// natsx.EnsureTopology).
func New(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Store, error) {
	st, err := js.Stream(ctx, events.EventStream)
	if err != nil {
		return nil, fmt.Errorf("open event stream: %w", err)
	}
	s := &Store{js: js, stream: st, cache: map[string]*list.Element{}, lru: list.New(), limit: 4096}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// AppendResult tells where an append landed.
type AppendResult struct {
	// Version is the aggregate's version after the append.
	Version uint64
	// Sequence is the stream sequence of the commit; a reader that has seen
	// this sequence has seen the append.
	Sequence uint64
	// Duplicate is true when the command had been appended before and this
	// call stored nothing.
	Duplicate bool
}

// Append stores evs as the next events of the aggregate, which must be at
// version expected (0 for a new aggregate). commandID makes the append
// idempotent: a retry with the same id stores nothing and returns the first
// result, even when its expected version has gone stale meanwhile. The
// envelopes' aggregate fields and versions are filled in here.
func (s *Store) Append(ctx context.Context, aggType, aggID string, expected uint64, commandID string, evs ...events.Envelope) (AppendResult, error) {
	if len(evs) == 0 {
		return AppendResult{}, fmt.Errorf("%w: no events", ErrInvalidAppend)
	}
	if !events.ValidToken(aggType) || !events.ValidToken(aggID) {
		return AppendResult{}, fmt.Errorf("%w: aggregate %q/%q", ErrInvalidAppend, aggType, aggID)
	}
	if commandID == "" {
		commandID = events.NewID()
	}
	subject := events.EventSubject(aggType, aggID)
	types := ""
	for i := range evs {
		if !events.Known(evs[i].Type) {
			return AppendResult{}, fmt.Errorf("%w: event type %q: %w", ErrInvalidAppend, evs[i].Type, events.ErrUnknownType)
		}
		if evs[i].ID == "" {
			evs[i].ID = events.NewID()
		}
		if evs[i].OccurredAt.IsZero() {
			evs[i].OccurredAt = time.Now().UTC()
		}
		evs[i].AggregateType, evs[i].AggregateID = aggType, aggID
		evs[i].AggregateVersion = expected + uint64(i) + 1
		if i > 0 {
			types += ","
		}
		types += evs[i].Type
	}
	body, err := events.MarshalCommit(evs)
	if err != nil {
		return AppendResult{}, fmt.Errorf("%w: %w", ErrInvalidAppend, err)
	}
	newVersion := expected + uint64(len(evs))
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	msg.Header.Set(HeaderVersion, strconv.FormatUint(newVersion, 10))
	msg.Header.Set(HeaderCount, strconv.Itoa(len(evs)))
	msg.Header.Set(HeaderTypes, types)
	if p := commitProject(evs); p != "" {
		msg.Header.Set(HeaderProject, p)
	}

	for attempt := 0; ; attempt++ {
		head, err := s.head(ctx, subject, attempt > 0)
		if err != nil {
			return AppendResult{}, fmt.Errorf("append to %s: %w", subject, err)
		}
		if head.version != expected {
			return s.conflict(ctx, subject, expected, commandID, head)
		}
		ack, err := s.js.PublishMsg(ctx, msg,
			jetstream.WithExpectLastSequencePerSubject(head.seq),
			jetstream.WithMsgID(commandID))
		if err != nil {
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
				s.forget(subject)
				if attempt == 0 {
					continue // our cached head was stale: look again
				}
				head, herr := s.head(ctx, subject, true)
				if herr != nil {
					return AppendResult{}, fmt.Errorf("append to %s: %w", subject, herr)
				}
				return s.conflict(ctx, subject, expected, commandID, head)
			}
			return AppendResult{}, fmt.Errorf("append to %s: %w", subject, err)
		}
		if ack.Duplicate {
			// The same command was stored before within the dedup window.
			s.forget(subject)
			v, err := s.versionAt(ctx, ack.Sequence)
			if err != nil {
				return AppendResult{}, fmt.Errorf("append to %s: duplicate: %w", subject, err)
			}
			return AppendResult{Version: v, Sequence: ack.Sequence, Duplicate: true}, nil
		}
		s.advance(subject, ack.Sequence, newVersion)
		return AppendResult{Version: newVersion, Sequence: ack.Sequence}, nil
	}
}

// conflict decides between "this command was already stored" and a real
// concurrency conflict, by looking for the command id among the commits that
// followed the expected version.
func (s *Store) conflict(ctx context.Context, subject string, expected uint64, commandID string, head headInfo) (AppendResult, error) {
	if head.version > expected {
		if r, ok, err := s.findCommand(ctx, subject, expected, commandID, head); err != nil {
			return AppendResult{}, fmt.Errorf("append to %s: %w", subject, err)
		} else if ok {
			return r, nil
		}
	}
	return AppendResult{}, fmt.Errorf("append to %s at version %d (current %d): %w", subject, expected, head.version, ErrConcurrency)
}

type headInfo struct {
	seq     uint64
	version uint64
	msgID   string
}

// head returns the last commit of a subject, from the cache unless fresh.
func (s *Store) head(ctx context.Context, subject string, fresh bool) (headInfo, error) {
	if !fresh {
		s.mu.Lock()
		if el, ok := s.cache[subject]; ok {
			c := el.Value.(*cached)
			s.mu.Unlock()
			return headInfo{seq: c.seq, version: c.version}, nil
		}
		s.mu.Unlock()
	}
	m, err := s.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return headInfo{}, nil
	}
	if err != nil {
		return headInfo{}, fmt.Errorf("read head: %w", err)
	}
	v, err := strconv.ParseUint(m.Header.Get(HeaderVersion), 10, 64)
	if err != nil {
		return headInfo{}, fmt.Errorf("read head: commit %d has no valid %s header", m.Sequence, HeaderVersion)
	}
	return headInfo{seq: m.Sequence, version: v, msgID: m.Header.Get(jetstream.MsgIDHeader)}, nil
}

func (s *Store) versionAt(ctx context.Context, seq uint64) (uint64, error) {
	m, err := s.stream.GetMsg(ctx, seq)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(m.Header.Get(HeaderVersion), 10, 64)
}

// findCommand scans the aggregate's commits after version `after` for one
// stored with commandID.
func (s *Store) findCommand(ctx context.Context, subject string, after uint64, commandID string, head headInfo) (AppendResult, bool, error) {
	if head.msgID == commandID {
		return AppendResult{Version: head.version, Sequence: head.seq, Duplicate: true}, true, nil
	}
	found := AppendResult{}
	ok := false
	err := s.scan(ctx, subject, 1, head.seq, func(m jetstream.Msg, meta *jetstream.MsgMetadata) error {
		v, _ := strconv.ParseUint(m.Headers().Get(HeaderVersion), 10, 64)
		if v > after && m.Headers().Get(jetstream.MsgIDHeader) == commandID {
			found = AppendResult{Version: v, Sequence: meta.Sequence.Stream, Duplicate: true}
			ok = true
		}
		return nil
	})
	return found, ok, err
}

// scan delivers the messages of subject with stream sequence in [from, to].
func (s *Store) scan(ctx context.Context, subject string, from, to uint64, fn func(jetstream.Msg, *jetstream.MsgMetadata) error) error {
	if to == 0 || from > to {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from
	}
	cons, err := s.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("scan %s: %w", subject, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = s.stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("scan %s: %w", subject, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("scan %s: %w", subject, err)
			}
			if meta.Sequence.Stream > to {
				return nil
			}
			if err := fn(m, meta); err != nil {
				return err
			}
			if meta.Sequence.Stream == to || meta.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("scan %s: %w", subject, err)
		}
		if n == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("scan %s: no messages up to sequence %d", subject, to)
		}
	}
}

// Load returns an aggregate's whole history, decoded, and its version. An
// aggregate with no events has version 0 and no error. Histories are cached;
// a load costs one direct get when nothing changed.
func (s *Store) Load(ctx context.Context, aggType, aggID string) ([]events.Event, uint64, error) {
	if !events.ValidToken(aggType) || !events.ValidToken(aggID) {
		return nil, 0, fmt.Errorf("load %s/%s: %w: invalid aggregate", aggType, aggID, ErrInvalidAppend)
	}
	subject := events.EventSubject(aggType, aggID)
	head, err := s.head(ctx, subject, true)
	if err != nil {
		return nil, 0, fmt.Errorf("load %s: %w", subject, err)
	}
	if head.seq == 0 {
		return nil, 0, nil
	}
	var base []events.Event
	var from uint64 = 1
	s.mu.Lock()
	if el, ok := s.cache[subject]; ok {
		c := el.Value.(*cached)
		if c.histSeq == head.seq {
			out := append([]events.Event(nil), c.evs...)
			s.lru.MoveToFront(el)
			s.mu.Unlock()
			return out, head.version, nil
		}
		if c.histSeq > 0 && c.histSeq < head.seq {
			base = c.evs
			from = c.histSeq + 1
		}
	}
	s.mu.Unlock()
	evs := append([]events.Event(nil), base...)
	err = s.scan(ctx, subject, from, head.seq, func(m jetstream.Msg, meta *jetstream.MsgMetadata) error {
		commit, err := events.UnmarshalCommit(m.Data())
		if err != nil {
			return fmt.Errorf("commit %d: %w", meta.Sequence.Stream, err)
		}
		for i := range commit {
			commit[i].Sequence = meta.Sequence.Stream
		}
		evs = append(evs, commit...)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("load %s: %w", subject, err)
	}
	s.store(&cached{subject: subject, seq: head.seq, version: head.version, histSeq: head.seq, evs: evs})
	return append([]events.Event(nil), evs...), head.version, nil
}

func (s *Store) store(c *cached) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.cache[c.subject]; ok {
		old := el.Value.(*cached)
		if old.seq > c.seq {
			// An append moved the head meanwhile: keep that head, take the
			// longer history.
			if c.histSeq > old.histSeq {
				el.Value = &cached{subject: c.subject, seq: old.seq, version: old.version, histSeq: c.histSeq, evs: c.evs}
			}
			s.lru.MoveToFront(el)
			return
		}
		el.Value = c
		s.lru.MoveToFront(el)
		return
	}
	s.insertLocked(c)
}

// insertLocked adds an entry and evicts the least recently used. s.mu must be held.
func (s *Store) insertLocked(c *cached) {
	s.cache[c.subject] = s.lru.PushFront(c)
	for s.lru.Len() > s.limit {
		old := s.lru.Back()
		s.lru.Remove(old)
		delete(s.cache, old.Value.(*cached).subject)
	}
}

// advance moves the cached head after a successful append; the cached
// history stays and Load fetches only the newer commits.
func (s *Store) advance(subject string, seq, version uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.cache[subject]; ok {
		c := el.Value.(*cached)
		el.Value = &cached{subject: subject, seq: seq, version: version, histSeq: c.histSeq, evs: c.evs}
		s.lru.MoveToFront(el)
		return
	}
	s.insertLocked(&cached{subject: subject, seq: seq, version: version})
}

func (s *Store) forget(subject string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.cache[subject]; ok {
		s.lru.Remove(el)
		delete(s.cache, subject)
	}
}

// LastSequence is the stream's last sequence: a projection that reached it
// has seen every event appended before the call.
func (s *Store) LastSequence(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("event stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// commitProject is the project all events of a commit share, or "".
func commitProject(evs []events.Envelope) string {
	p := evs[0].ProjectID
	for _, e := range evs[1:] {
		if e.ProjectID != p {
			return ""
		}
	}
	return p
}
