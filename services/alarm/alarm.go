// Package alarm is ELB's alarm service: rules of the form "metric ×
// threshold × N consecutive periods" over agent samples, agent-alive
// watching of heartbeats, real-server health from the event stream; raised
// and resolved alarms are events on the alarm aggregate (deduplicated: one
// id per rule and resource), delivered to webhooks and mail unless
// silenced. See README.md.
package alarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/consumer"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/follow"
	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/platform/projection"
	"github.com/elbcloud/elb/services/alarm/adapters/notify"
	"github.com/elbcloud/elb/services/alarm/app"
	"github.com/elbcloud/elb/services/alarm/domain"
	"github.com/elbcloud/elb/services/alarm/ports"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Re-exported for callers of Run.
type (
	Rule     = domain.Rule
	Silence  = domain.Silence
	Webhook  = domain.Webhook
	SMTP     = domain.SMTP
	Notifier = app.Notifier
)

// DefaultRules is the built-in rule set (seed 001's alarm tables).
func DefaultRules() []Rule { return domain.DefaultRules() }

// AlarmID is the alarm aggregate id of a rule on a resource.
func AlarmID(rule, resource string) string { return domain.AlarmID(rule, resource) }

// ErrConfig is returned by Run for an unusable configuration.
var ErrConfig = errors.New("alarm config")

// Config wires the alarm service.
type Config struct {
	// JS is a JetStream context with service rights; the topology
	// (natsx.EnsureTopology) must exist. When nil, one is made from NC.
	JS jetstream.JetStream
	NC *nats.Conn
	// Logger defaults to slog.Default(); Clock to time.Now.
	Logger *slog.Logger
	Clock  func() time.Time
	// Rules replaces the built-in rule set when non-nil.
	Rules []Rule
	// RulesFile is a JSON rule file (see domain.Config) merged over Rules
	// (or the built-in set): rules, silences, webhooks, SMTP relay.
	RulesFile string
	Silences  []Silence
	Webhooks  []Webhook
	SMTP      *SMTP
	// Notifiers are extra channels (embedding, tests).
	Notifiers []Notifier
	// HTTPClient is used for webhooks; nil means a 5 s timeout client.
	HTTPClient *http.Client
	// AgentTimeout, when set, overrides the agent-alive rule's timeout
	// (default 5 s).
	AgentTimeout time.Duration
	// EvalInterval is how often agent liveness and real-server health are
	// evaluated. Default 1 s.
	EvalInterval time.Duration
	// ConsumerPrefix names the durable notification consumer
	// (<prefix>-notify). Default "alarm". A new durable starts at the end
	// of the event stream.
	ConsumerPrefix string
	// Registerer receives the Prometheus collectors; nil skips them.
	Registerer prometheus.Registerer
}

// Run serves until ctx is cancelled and returns nil then, or the first
// set-up error.
func Run(ctx context.Context, cfg Config) error {
	if cfg.JS == nil && cfg.NC != nil {
		js, err := jetstream.New(cfg.NC)
		if err != nil {
			return fmt.Errorf("%w: jetstream: %w", ErrConfig, err)
		}
		cfg.JS = js
	}
	if cfg.JS == nil {
		return fmt.Errorf("%w: JS or NC is required", ErrConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", "alarm")
	if cfg.EvalInterval <= 0 {
		cfg.EvalInterval = time.Second
	}
	if cfg.ConsumerPrefix == "" {
		cfg.ConsumerPrefix = "alarm"
	}
	rules := append([]Rule(nil), cfg.Rules...)
	if cfg.Rules == nil {
		rules = domain.DefaultRules()
	}
	silences := append([]Silence(nil), cfg.Silences...)
	webhooks := append([]Webhook(nil), cfg.Webhooks...)
	smtpCfg := cfg.SMTP
	if cfg.RulesFile != "" {
		data, err := os.ReadFile(cfg.RulesFile)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		fc, err := domain.ParseConfig(data)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrConfig, cfg.RulesFile, err)
		}
		rules = domain.MergeRules(rules, fc)
		silences = append(silences, fc.Silences...)
		webhooks = append(webhooks, fc.Webhooks...)
		if fc.SMTP != nil {
			smtpCfg = fc.SMTP
		}
	}
	if cfg.AgentTimeout > 0 {
		for i := range rules {
			if rules[i].Kind == domain.KindAgentAlive {
				rules[i].Threshold = cfg.AgentTimeout.Seconds()
			}
		}
	}
	notifiers := append([]Notifier(nil), cfg.Notifiers...)
	for _, w := range webhooks {
		n, err := notify.NewWebhook(w, cfg.HTTPClient)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		notifiers = append(notifiers, n)
	}
	if smtpCfg != nil {
		n, err := notify.NewMail(*smtpCfg)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		notifiers = append(notifiers, n)
	}
	store, err := eventstore.New(ctx, cfg.JS)
	if err != nil {
		return fmt.Errorf("alarm: %w", err)
	}
	svc, err := app.New(store, app.Options{Rules: rules, Silences: silences, Notifiers: notifiers, Clock: cfg.Clock,
		Logger: log, Metrics: app.NewMetrics(cfg.Registerer)})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}

	// Every goroutine has stopped when Run returns (wg.Wait runs after
	// cancel: deferred calls run in reverse order).
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 8)
	spawn := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- f()
		}()
	}
	proj := projection.New(cfg.JS, []string{
		events.EventSubjectPrefix + events.AggAlarm + ".>",
		events.EventSubjectPrefix + events.AggLoadBalancer + ".>",
	}, svc.ApplyEvent, log)
	spawn(func() error { return proj.Run(ctx) })
	// Rules are evaluated only once the raised alarms are known: nothing is
	// raised twice or left unresolved across a restart.
	select {
	case <-proj.CaughtUp():
	case err := <-errc:
		return fmt.Errorf("alarm: %w", err)
	case <-ctx.Done():
		return nil
	}
	spawn(func() error {
		return consumer.Run(ctx, cfg.JS, consumer.Config{
			Name:           cfg.ConsumerPrefix + "-notify",
			FilterSubjects: []string{events.EventSubjectPrefix + events.AggAlarm + ".>"},
			DeliverNew:     true,
			// One delivery takes at most app.NotifyTimeout (every channel
			// with its retries); AckWait stays above all attempts together
			// so the server does not redeliver while we still try, and a
			// message caught in a restart comes back within AckWait.
			MaxAttempts:   3,
			RetryInterval: time.Second,
			AckWait:       3*app.NotifyTimeout + 30*time.Second,
			Logger:        log,
		}, ports.NotifyHandler(svc))
	})
	// Agent streams are read with ordered consumers (no acks: the state
	// they feed is in memory and rebuilt on start; see docs/decisions/0602).
	// The first tick waits until each reader started, and until the health
	// reports were replayed: alarms of real servers not replayed yet would
	// otherwise be resolved as gone.
	var ready sync.WaitGroup
	read := func(fc follow.Config, fn func(jetstream.Msg, *jetstream.MsgMetadata)) {
		ready.Add(1)
		fc.Caught, fc.Log = ready.Done, log
		spawn(func() error { return follow.Run(ctx, cfg.JS, fc, fn) })
	}
	read(follow.Config{Stream: events.SampleStream, Filters: []string{events.AgentSubjectPrefix + "*." + events.ReportSamples},
		Policy: jetstream.DeliverNewPolicy}, func(m jetstream.Msg, _ *jetstream.MsgMetadata) {
		if err := ports.HandleSamples(ctx, svc, m.Subject(), m.Data()); err != nil {
			log.Warn("sample batch ignored", "subject", m.Subject(), "err", err)
		}
	})
	read(follow.Config{Stream: natsx.HeartbeatStream, Filters: []string{events.AgentSubjectPrefix + "*." + events.ReportHeartbeat},
		Policy: jetstream.DeliverLastPerSubjectPolicy}, func(m jetstream.Msg, meta *jetstream.MsgMetadata) {
		if err := ports.HandleHeartbeat(svc, m.Subject(), m.Data(), time.Since(meta.Timestamp)); err != nil {
			log.Warn("heartbeat ignored", "subject", m.Subject(), "err", err)
		}
	})
	read(follow.Config{Stream: events.ReportStream, Filters: []string{events.AgentSubjectPrefix + "*." + events.ReportHealth},
		Policy: jetstream.DeliverAllPolicy}, func(m jetstream.Msg, _ *jetstream.MsgMetadata) {
		if err := ports.HandleHealthReport(svc, m.Subject(), m.Data()); err != nil {
			log.Warn("health report ignored", "subject", m.Subject(), "err", err)
		}
	})
	started := make(chan struct{})
	go func() {
		ready.Wait()
		close(started)
	}()
	select {
	case <-started:
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("alarm: %w", err)
		}
	case <-ctx.Done():
		return nil
	}
	log.Info("alarm service running", "rules", len(rules), "notifiers", len(notifiers), "silences", len(silences))
	t := time.NewTicker(cfg.EvalInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("alarm: %w", err)
			}
		case <-t.C:
			svc.Tick(ctx)
		}
	}
}
