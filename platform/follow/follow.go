// Package follow reads a stream with an ordered consumer: no server-side
// state and no acks, the reader's state lives in memory and is rebuilt on
// start. Read models, load windows and liveness trackers use it; work that
// must happen at least once uses platform/consumer instead.
package follow

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config says what Run reads.
type Config struct {
	Stream string
	// Filters limit the subjects; empty reads the whole stream.
	Filters []string
	// Policy is where a fresh follower starts: jetstream.DeliverAllPolicy
	// (the zero value), DeliverNewPolicy, DeliverLastPerSubjectPolicy or
	// DeliverByStartTimePolicy (with StartTime).
	Policy    jetstream.DeliverPolicy
	StartTime time.Time
	// Caught, when set, is called once everything that was in the stream
	// when the follower started has been handed over (or when Run ends
	// before that, so waiters are released).
	Caught func()
	Log    *slog.Logger
}

// Run hands every message to fn, in stream order, until ctx ends; it returns
// nil then. After a bus error it recreates the consumer and resumes after the
// last message handed over, so fn sees no message twice and skips none.
func Run(ctx context.Context, js jetstream.JetStream, cfg Config, fn func(m jetstream.Msg, meta *jetstream.MsgMetadata)) error {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	var pos uint64
	caught := func() {}
	if cfg.Caught != nil {
		caught = sync.OnceFunc(cfg.Caught)
	}
	defer caught()
	for ctx.Err() == nil {
		err := run(ctx, js, cfg, &pos, caught, fn)
		if ctx.Err() != nil {
			return nil
		}
		cfg.Log.Warn("stream follower interrupted; resuming", "stream", cfg.Stream, "filters", cfg.Filters, "position", pos, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

func run(ctx context.Context, js jetstream.JetStream, cfg Config, pos *uint64, caught func(), fn func(jetstream.Msg, *jetstream.MsgMetadata)) error {
	stream, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return err
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: cfg.Filters, DeliverPolicy: cfg.Policy}
	switch {
	case *pos > 0:
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, *pos+1
	case cfg.Policy == jetstream.DeliverByStartTimePolicy:
		start := cfg.StartTime
		occ.OptStartTime = &start
	}
	cons, err := stream.OrderedConsumer(ctx, occ)
	if err != nil {
		return err
	}
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		caught()
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return err
	}
	defer it.Stop()
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	for {
		m, err := it.Next()
		if err != nil {
			return err
		}
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		*pos = meta.Sequence.Stream
		fn(m, meta)
		if meta.NumPending == 0 {
			caught()
		}
	}
}
