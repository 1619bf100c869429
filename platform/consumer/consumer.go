// Package consumer is the one way ELB services consume JetStream: a durable
// pull consumer feeding a watermill Router, with ack on success, in-process
// retry with backoff on transient errors, and parking on the dead-letter
// stream after the last attempt or on a permanent error. A bad message never
// crashes the consumer and never blocks the ones behind it for long.
//
// watermill-nats is not used (it publishes to the stream name, ignores
// consumer config and crashes on repeated headers); the subscriber and the
// dead-letter publisher here are small and speak nats.go's jetstream package.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/elbcloud/elb/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config describes one durable consumer.
type Config struct {
	// Name is the durable consumer name; unique per service and purpose.
	Name string
	// Stream defaults to the event stream.
	Stream string
	// FilterSubjects limits what is consumed; empty takes the whole stream.
	FilterSubjects []string
	// StartSeq is where a new durable starts (0: the beginning). An existing
	// durable resumes where it stopped.
	StartSeq uint64
	// DeliverNew starts a new durable at the end of the stream.
	DeliverNew bool
	// MaxAttempts is how often a message is tried before it is parked
	// (counting redeliveries after a crash). Default 5.
	MaxAttempts int
	// RetryInterval is the first backoff between in-process retries
	// (doubling, capped at 2 s). Default 100 ms.
	RetryInterval time.Duration
	// AckWait is how long the server waits for an ack before redelivering.
	AckWait time.Duration
	Logger  *slog.Logger
}

// Msg is one message as a handler sees it.
type Msg struct {
	Subject   string
	Data      []byte
	Header    nats.Header
	Sequence  uint64
	Delivered int
	Time      time.Time
}

// Handler processes one message. A nil error acks it; an error marked with
// Permanent parks it at once; any other error is retried.
type Handler func(ctx context.Context, m Msg) error

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying: the message is parked.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err was marked with Permanent or is a decode
// error (a malformed or unknown message never gets better).
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p) || events.IsDecodeError(err)
}

// errStopping marks a handler error caused by the consumer being stopped: the
// message is neither retried nor parked but handed back to the server.
var errStopping = errors.New("consumer stopping")

// ErrTooManyDeliveries parks a message that keeps coming back (e.g. because
// handling it crashes the process).
var ErrTooManyDeliveries = errors.New("too many deliveries")

// Dead-letter headers.
const (
	HeaderDLQSubject  = "Elb-Dlq-Subject"
	HeaderDLQSequence = "Elb-Dlq-Sequence"
	HeaderDLQError    = "Elb-Dlq-Error"
	HeaderDLQConsumer = "Elb-Dlq-Consumer"
)

// Events adapts an event handler: each message is decoded as a commit and
// its events handled in order. Decode failures are permanent.
func Events(h func(ctx context.Context, e events.Event) error) Handler {
	return func(ctx context.Context, m Msg) error {
		evs, err := events.UnmarshalCommit(m.Data)
		if err != nil {
			return Permanent(err)
		}
		for _, e := range evs {
			e.Sequence = m.Sequence
			if err := h(ctx, e); err != nil {
				return fmt.Errorf("%s %s/%s v%d: %w", e.Type, e.AggregateType, e.AggregateID, e.AggregateVersion, err)
			}
		}
		return nil
	}
}

type ctxKey struct{}

// Run consumes until ctx is cancelled, then stops gracefully (the message in
// hand is finished). It returns nil after a cancel, or the set-up error.
func Run(ctx context.Context, js jetstream.JetStream, cfg Config, h Handler) error {
	if cfg.Name == "" || !events.ValidToken(cfg.Name) {
		return fmt.Errorf("consumer: invalid name %q", cfg.Name)
	}
	if cfg.Stream == "" {
		cfg.Stream = events.EventStream
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 100 * time.Millisecond
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("consumer", cfg.Name)

	ccfg := jetstream.ConsumerConfig{
		Durable:        cfg.Name,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		MaxAckPending:  1, // strict order per consumer
		FilterSubjects: cfg.FilterSubjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	switch {
	case cfg.DeliverNew:
		ccfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case cfg.StartSeq > 1:
		ccfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		ccfg.OptStartSeq = cfg.StartSeq
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, ccfg)
	if err != nil {
		// An existing durable keeps its start position; only the mutable
		// fields may change.
		cons, err = js.Consumer(ctx, cfg.Stream, cfg.Name)
		if err != nil {
			return fmt.Errorf("consumer %s: %w", cfg.Name, err)
		}
	}

	wlog := watermill.NewSlogLogger(log)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, wlog)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", cfg.Name, err)
	}
	dlq := &dlqPublisher{js: js, consumer: cfg.Name}
	poison, err := middleware.PoisonQueueWithFilter(dlq, events.DeadLetterSubjectPrefix+cfg.Name, func(err error) bool {
		return !errors.Is(err, errStopping) // a message cut short by a stop is redelivered, not parked
	})
	if err != nil {
		return fmt.Errorf("consumer %s: %w", cfg.Name, err)
	}
	retry := middleware.Retry{
		MaxRetries:      cfg.MaxAttempts - 1,
		InitialInterval: cfg.RetryInterval,
		Multiplier:      2,
		MaxInterval:     2 * time.Second,
		Logger:          wlog,
		ShouldRetry: func(p middleware.RetryParams) bool {
			return !IsPermanent(p.Err) && !errors.Is(p.Err, errStopping)
		},
	}
	router.AddMiddleware(poison, retry.Middleware, middleware.Recoverer)
	sub := &subscriber{cons: cons, log: log, closed: make(chan struct{})}
	router.AddConsumerHandler(cfg.Name, cfg.Name, sub, func(wm *message.Message) error {
		m, _ := wm.Context().Value(ctxKey{}).(Msg)
		if m.Delivered > cfg.MaxAttempts {
			return Permanent(fmt.Errorf("%w: %d", ErrTooManyDeliveries, m.Delivered))
		}
		err := h(wm.Context(), m)
		if err != nil && wm.Context().Err() != nil {
			return fmt.Errorf("%w: %w", errStopping, err)
		}
		if err != nil {
			log.Warn("handler failed", "subject", m.Subject, "seq", m.Sequence, "err", err, "permanent", IsPermanent(err))
		}
		return err
	})
	go func() {
		<-ctx.Done()
		_ = router.Close()
	}()
	if err := router.Run(ctx); err != nil && ctx.Err() == nil {
		return fmt.Errorf("consumer %s: %w", cfg.Name, err)
	}
	return nil
}

// subscriber feeds one durable consumer's messages to the router, one at a
// time, and acks or naks each according to the handler chain's verdict.
type subscriber struct {
	cons   jetstream.Consumer
	log    *slog.Logger
	closed chan struct{}
}

func (s *subscriber) Subscribe(ctx context.Context, _ string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		// One pull of one message at a time: nothing is ever waiting in a
		// client buffer or in a pull request nobody reads, so a message
		// handed back on stop goes straight to the next instance.
		for ctx.Err() == nil {
			select {
			case <-s.closed:
				return
			default:
			}
			batch, err := s.cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("fetch failed", "err", err)
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for jm := range batch.Messages() {
				if ctx.Err() != nil {
					_ = jm.Nak() // arrived while stopping
					continue
				}
				s.deliver(ctx, out, jm)
			}
		}
	}()
	return out, nil
}

// deliver hands one message to the router and acks or naks it according to
// the handler chain's verdict.
func (s *subscriber) deliver(ctx context.Context, out chan<- *message.Message, jm jetstream.Msg) {
	meta, err := jm.Metadata()
	if err != nil {
		s.log.Warn("message without metadata", "err", err)
		_ = jm.Term()
		return
	}
	m := Msg{Subject: jm.Subject(), Data: jm.Data(), Header: jm.Headers(), Sequence: meta.Sequence.Stream,
		Delivered: int(meta.NumDelivered), Time: meta.Timestamp}
	wm := message.NewMessage(watermill.NewUUID(), jm.Data())
	wm.Metadata.Set(HeaderDLQSubject, m.Subject)
	wm.Metadata.Set(HeaderDLQSequence, strconv.FormatUint(m.Sequence, 10))
	wm.SetContext(context.WithValue(ctx, ctxKey{}, m))
	select {
	case out <- wm:
	case <-ctx.Done():
		_ = jm.Nak()
		return
	}
	select {
	case <-wm.Acked():
		// Handled: the ack goes out even when the consumer is stopping.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := jm.DoubleAck(actx); err != nil {
			s.log.Warn("ack failed; the message will be redelivered", "seq", m.Sequence, "err", err)
		}
		cancel()
	case <-wm.Nacked():
		if ctx.Err() != nil {
			_ = jm.Nak() // stopping: let another instance have it now
		} else {
			_ = jm.NakWithDelay(time.Second)
		}
	case <-ctx.Done():
		_ = jm.Nak()
	}
}

func (s *subscriber) Close() error {
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	return nil
}

// dlqPublisher parks poisoned messages on the dead-letter stream.
type dlqPublisher struct {
	js       jetstream.JetStream
	consumer string
}

func (p *dlqPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, wm := range msgs {
		m := &nats.Msg{Subject: topic, Data: wm.Payload, Header: nats.Header{}}
		m.Header.Set(HeaderDLQConsumer, p.consumer)
		m.Header.Set(HeaderDLQSubject, wm.Metadata.Get(HeaderDLQSubject))
		m.Header.Set(HeaderDLQSequence, wm.Metadata.Get(HeaderDLQSequence))
		m.Header.Set(HeaderDLQError, wm.Metadata.Get(middleware.ReasonForPoisonedKey))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := p.js.PublishMsg(ctx, m)
		cancel()
		if err != nil {
			return fmt.Errorf("park message on %s: %w", topic, err)
		}
	}
	return nil
}

func (p *dlqPublisher) Close() error { return nil }
