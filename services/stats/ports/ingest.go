// Package ports holds the stats service's inbound adapters: the JetStream
// ingest consumer of agent samples and the NATS request/reply query
// responder.
package ports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/stats/domain"
)

// Inserter is what ingest needs from a store.
type Inserter interface {
	Insert(ctx context.Context, batches []domain.Batch) error
}

// IngestConfig configures the sample consumer.
type IngestConfig struct {
	// Durable is the durable consumer name. Default "stats-ingest".
	Durable string
	// MaxSamples flushes the buffer when it holds this many points.
	// Default 20000.
	MaxSamples int
	// FlushInterval flushes a non-empty buffer at the latest this long after
	// its first message. Default 1 s (ClickHouse prefers at most about one
	// insert per second; samples are 10 s apart anyway).
	FlushInterval time.Duration
	// AckWait is the server's redelivery timeout; held messages are kept
	// alive with in-progress acks while an insert is retried. Default 60 s.
	AckWait time.Duration
	// RetryMin and RetryMax bound the backoff between failed inserts.
	// Defaults 200 ms and 5 s.
	RetryMin, RetryMax time.Duration
	// InsertTimeout bounds one insert attempt. Default 30 s.
	InsertTimeout time.Duration
	Logger        *slog.Logger
	Metrics       *Metrics
}

func (c *IngestConfig) defaults() {
	if c.Durable == "" {
		c.Durable = "stats-ingest"
	}
	if c.MaxSamples <= 0 {
		c.MaxSamples = 20000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.AckWait <= 0 {
		c.AckWait = 60 * time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 200 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.InsertTimeout <= 0 {
		c.InsertTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
}

// Dead-letter headers, the same as platform/consumer sets.
const (
	headerDLQSubject  = "Elb-Dlq-Subject"
	headerDLQSequence = "Elb-Dlq-Sequence"
	headerDLQError    = "Elb-Dlq-Error"
	headerDLQConsumer = "Elb-Dlq-Consumer"
)

// SampleSubjects is what ingest consumes.
var SampleSubjects = events.AgentSubjectPrefix + "*." + events.ReportSamples

// Ingest consumes agent sample batches from JetStream and stores them in
// batches. A message is acked only after the insert holding it returned
// success, so an outage of the store loses nothing: the messages stay in
// the stream (held ones are kept alive, the rest wait) and are stored when
// the store is back. Redelivered batches are deduplicated by the store
// (batch id). Messages that can never be stored (malformed JSON, invalid
// batch, node id not matching the subject) are parked on the dead-letter
// stream and terminated; they never stop ingest.
//
// The shared platform/consumer helper is not used here: it hands over one
// message at a time with MaxAckPending 1, while ingest must hold thousands
// of unacked messages to insert them as one ClickHouse block (see
// docs/decisions/0102-stats-ingest-batching.md).
type Ingest struct {
	js    jetstream.JetStream
	store Inserter
	cfg   IngestConfig
	log   *slog.Logger
	m     *Metrics
}

// NewIngest returns the consumer; Run starts it.
func NewIngest(js jetstream.JetStream, store Inserter, cfg IngestConfig) *Ingest {
	cfg.defaults()
	return &Ingest{js: js, store: store, cfg: cfg, log: cfg.Logger.With("consumer", cfg.Durable), m: cfg.Metrics}
}

type held struct {
	msg   jetstream.Msg
	batch domain.Batch
}

// Run consumes until ctx is cancelled; it returns nil then, or a set-up
// error. Messages held at cancellation are left unacked (redelivered later).
func (g *Ingest) Run(ctx context.Context) error {
	cons, err := g.js.CreateOrUpdateConsumer(ctx, events.SampleStream, jetstream.ConsumerConfig{
		Durable:       g.cfg.Durable,
		FilterSubject: SampleSubjects,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       g.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 4 * g.cfg.MaxSamples,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("ingest: consumer %s on %s: %w", g.cfg.Durable, events.SampleStream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	msgs := make(chan jetstream.Msg, 1024)
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				if ctx.Err() != nil {
					return
				}
				g.log.Warn("ingest: fetch", "err", err)
				select { // do not spin while the connection is down
				case <-time.After(200 * time.Millisecond):
				case <-ctx.Done():
					return
				}
				continue
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer it.Stop()
	go g.watchPending(ctx, cons)

	// Two stages: this loop decodes and buffers while the flusher inserts
	// the previous buffer, so JSON decoding overlaps the ClickHouse insert.
	// One insert at a time keeps the dedupe lookup of a buffer after the
	// insert of the one before.
	type work struct {
		buf     []held
		samples int
	}
	flushes := make(chan work)
	flusherDone := make(chan struct{})
	go func() {
		defer close(flusherDone)
		for w := range flushes {
			if !g.flush(ctx, w.buf, w.samples) {
				// ctx ended: leave the rest unacked for redelivery.
				for range flushes {
				}
				return
			}
		}
	}()
	defer func() {
		close(flushes)
		<-flusherDone
	}()

	var buf []held
	samples := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("ingest: consumer %s stopped delivering (deleted?)", g.cfg.Durable)
			}
			b, err := g.decode(m)
			if err != nil {
				g.park(ctx, m, err)
				continue
			}
			if len(buf) == 0 {
				timer.Reset(g.cfg.FlushInterval)
			}
			buf = append(buf, held{msg: m, batch: b})
			samples += len(b.Points)
			if samples < g.cfg.MaxSamples {
				continue
			}
		case <-timer.C:
		}
		timer.Stop()
		if len(buf) == 0 {
			continue
		}
		select {
		case flushes <- work{buf: buf, samples: samples}:
		case <-ctx.Done():
			return nil
		}
		buf, samples = nil, 0
	}
}

// decode checks one message; errors are permanent.
func (g *Ingest) decode(m jetstream.Msg) (domain.Batch, error) {
	var sb events.SampleBatch
	// goccy/go-json decodes the same JSON as encoding/json, about twice as
	// fast; decoding is most of ingest's own CPU.
	if err := gojson.Unmarshal(m.Data(), &sb); err != nil {
		return domain.Batch{}, fmt.Errorf("%w: decode: %v", domain.ErrInvalidBatch, err)
	}
	// Subjects are elb.agent.<node>.samples; an agent may only report for
	// itself (the server enforces it too, belt and braces).
	node := strings.TrimSuffix(strings.TrimPrefix(m.Subject(), events.AgentSubjectPrefix), "."+events.ReportSamples)
	if node != sb.NodeID {
		return domain.Batch{}, fmt.Errorf("%w: node_id %q published on %s", domain.ErrInvalidBatch, sb.NodeID, m.Subject())
	}
	return domain.NewBatch(sb)
}

// park moves a message that can never be stored to the dead-letter stream
// and terminates it. If parking fails the message is retried later, so it
// is never lost.
func (g *Ingest) park(ctx context.Context, m jetstream.Msg, cause error) {
	g.m.IngestBatches.WithLabelValues("invalid").Inc()
	var seq uint64
	if meta, err := m.Metadata(); err == nil {
		seq = meta.Sequence.Stream
	}
	g.log.Warn("ingest: parking invalid sample batch", "subject", m.Subject(), "seq", seq, "err", cause)
	dm := &nats.Msg{Subject: events.DeadLetterSubjectPrefix + g.cfg.Durable, Data: m.Data(), Header: nats.Header{}}
	dm.Header.Set(headerDLQConsumer, g.cfg.Durable)
	dm.Header.Set(headerDLQSubject, m.Subject())
	dm.Header.Set(headerDLQSequence, strconv.FormatUint(seq, 10))
	dm.Header.Set(headerDLQError, cause.Error())
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := g.js.PublishMsg(pctx, dm); err != nil {
		g.log.Error("ingest: cannot park message, will retry", "seq", seq, "err", err)
		_ = m.NakWithDelay(10 * time.Second)
		return
	}
	_ = m.Term()
}

// flush inserts the buffer, retrying with backoff until it succeeds, then
// acks every message. It returns false if ctx ended first.
func (g *Ingest) flush(ctx context.Context, buf []held, samples int) bool {
	batches := make([]domain.Batch, len(buf))
	newest := time.Time{}
	for i, h := range buf {
		batches[i] = h.batch
		if h.batch.Start.After(newest) {
			newest = h.batch.Start
		}
	}
	delay := g.cfg.RetryMin
	lastProgress := time.Now()
	for attempt := 1; ; attempt++ {
		start := time.Now()
		ictx, cancel := context.WithTimeout(ctx, g.cfg.InsertTimeout)
		err := g.store.Insert(ictx, batches)
		cancel()
		if err == nil {
			g.m.InsertSeconds.Observe(time.Since(start).Seconds())
			g.m.InsertSamples.Observe(float64(samples))
			g.m.IngestSamples.Add(float64(samples))
			g.m.IngestBatches.WithLabelValues("stored").Add(float64(len(buf)))
			g.m.IngestLag.Set(time.Since(newest).Seconds())
			if attempt > 1 {
				g.log.Info("ingest: store is back, batch stored", "attempts", attempt, "batches", len(buf), "samples", samples)
			}
			break
		}
		g.m.InsertErrors.Inc()
		if ctx.Err() != nil {
			return false
		}
		g.log.Warn("ingest: insert failed, retrying; nothing acked", "attempt", attempt, "batches", len(buf), "err", err, "retry_in", delay)
		// Keep the held messages from being redelivered while we retry.
		if time.Since(lastProgress) > g.cfg.AckWait/3 {
			for _, h := range buf {
				_ = h.msg.InProgress()
			}
			lastProgress = time.Now()
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(delay*2, g.cfg.RetryMax)
	}
	for _, h := range buf {
		// A lost ack only means a redelivery, which the store deduplicates.
		if err := h.msg.Ack(); err != nil {
			g.log.Debug("ingest: ack", "err", err)
		}
	}
	return true
}

func (g *Ingest) watchPending(ctx context.Context, cons jetstream.Consumer) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
			info, err := cons.Info(ictx)
			cancel()
			if err == nil {
				g.m.ConsumerPending.Set(float64(info.NumPending))
			}
		}
	}
}
