// Package runtime is the agent runtime shared by the tengine and lvs roles.
//
// It connects outbound to NATS (several URLs tried in random order, reconnect
// forever, no listening port), watches the node's desired config in the KV
// bucket, reconciles level-triggered through the Role, persists the last
// applied config so that a restart while the bus is down still serves it,
// and publishes heartbeats, applied/health reports and metric samples
// through a bounded outbox that never blocks the data plane.
package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/elbcloud/elb/agents/nodestats"
	"github.com/elbcloud/elb/events"
)

// Errors of the runtime.
var (
	// ErrBadConfig is returned by New for an unusable Config.
	ErrBadConfig = errors.New("bad agent config")
	// ErrForeignConfig wraps a desired config meant for another node or role.
	ErrForeignConfig = errors.New("desired config is for another node or role")
	// ErrInvalidConfig wraps a desired config that fails validation.
	ErrInvalidConfig = errors.New("invalid desired config")
)

// Role is what an agent role (tengine, lvs) implements.
type Role interface {
	// Name is the role, events.RoleTengine or events.RoleLVS.
	Name() string
	// Driver names the data-plane driver for heartbeats.
	Driver() string
	// Reconcile makes the data plane match cfg, the whole desired state. It
	// reads what is there and applies the difference; it is called on every
	// change and periodically, so it must be idempotent. cfg is never nil.
	Reconcile(ctx context.Context, cfg *events.NodeConfig) error
	// Samples returns the role's metric points for the interval ending now.
	Samples(now time.Time) []events.SamplePoint
}

// Hooks are what a role may call back into the runtime.
type Hooks interface {
	// ReportHealth publishes a health change (never blocks).
	ReportHealth(events.HealthReport)
	// Trigger asks for a reconcile soon (never blocks, coalesces).
	Trigger()
}

// Config configures an Agent.
type Config struct {
	NodeID string
	// Address is the node's own address, reported in heartbeats.
	Address string
	// Servers are NATS URLs; nats.go tries them in random order.
	Servers  []string
	User     string
	Password string
	// StateDir holds the last applied config (desired-config.json).
	StateDir string

	HeartbeatInterval time.Duration // default 2 s
	SampleInterval    time.Duration // default 10 s
	ResyncInterval    time.Duration // default 30 s
	// MaxBufferedSamples bounds sample batches kept while the bus is down
	// (oldest dropped first); default 60.
	MaxBufferedSamples int
	// MaxBufferedReports bounds applied/health reports kept; default 10000.
	MaxBufferedReports int
	// NodeStats adds node CPU, memory, network and TCP state points to every
	// sample batch (default true via New; set DisableNodeStats to turn off).
	DisableNodeStats bool

	Logger *slog.Logger
	// NATSOptions are appended to the runtime's own options (tests pass
	// nats.InProcessServer here).
	NATSOptions []nats.Option
}

// StateFile is the name of the persisted config inside StateDir.
const StateFile = "desired-config.json"

// AgentCredentials returns the user and password an agent uses: user
// "agent-<node id>", password hex(HMAC-SHA256(secret, node id)).
func AgentCredentials(secret []byte, nodeID string) (user, password string) {
	return events.AgentUser(nodeID), events.AgentPassword(string(secret), nodeID)
}

// Agent runs one node's control loop.
type Agent struct {
	cfg Config
	log *slog.Logger

	trigger chan struct{}
	out     *outbox
	stats   *nodestats.Collector

	mu      sync.Mutex
	desired *events.NodeConfig // last valid desired config
	applied uint64             // version last applied without error
	nc      *nats.Conn
	reconn  chan struct{}
	role    string
}

// New validates cfg and returns an agent; nothing runs until Run.
func New(cfg Config) (*Agent, error) {
	if !events.ValidToken(cfg.NodeID) {
		return nil, fmt.Errorf("%w: node id %q", ErrBadConfig, cfg.NodeID)
	}
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("%w: state dir missing", ErrBadConfig)
	}
	if len(cfg.Servers) == 0 && len(cfg.NATSOptions) == 0 {
		return nil, fmt.Errorf("%w: no NATS servers", ErrBadConfig)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 2 * time.Second
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = 10 * time.Second
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 30 * time.Second
	}
	if cfg.MaxBufferedSamples <= 0 {
		cfg.MaxBufferedSamples = 60
	}
	if cfg.MaxBufferedReports <= 0 {
		cfg.MaxBufferedReports = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &Agent{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.NodeID),
		trigger: make(chan struct{}, 1),
		reconn:  make(chan struct{}),
		out:     newOutbox(cfg.MaxBufferedReports, cfg.MaxBufferedSamples),
	}
	if !cfg.DisableNodeStats {
		a.stats = nodestats.New(cfg.NodeID)
	}
	return a, nil
}

// Trigger implements Hooks.
func (a *Agent) Trigger() {
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// ReportHealth implements Hooks.
func (a *Agent) ReportHealth(hr events.HealthReport) {
	hr.NodeID = a.cfg.NodeID
	if hr.Time.IsZero() {
		hr.Time = time.Now().UTC()
	}
	a.enqueue(events.ReportHealth, hr, false)
}

// Desired returns the last valid desired config (nil before the first).
func (a *Agent) Desired() *events.NodeConfig {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.desired
}

// AppliedVersion is the version last applied without error.
func (a *Agent) AppliedVersion() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied
}

func (a *Agent) enqueue(kind string, v any, sample bool) {
	data, err := json.Marshal(v)
	if err != nil {
		a.log.Error("encode report", "kind", kind, "err", err)
		return
	}
	a.out.push(outMsg{subject: events.AgentSubject(a.cfg.NodeID, kind), data: data}, sample)
}

// Run serves until ctx ends. It returns nil on cancellation; it does not
// return early when the bus is unreachable.
func (a *Agent) Run(ctx context.Context, role Role) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg, err := a.loadState(role.Name()); err != nil {
		a.log.Warn("no usable local state", "err", err)
	} else if cfg != nil {
		a.log.Info("serving persisted config until the bus answers", "version", cfg.Version)
		a.setDesired(cfg)
	}

	opts := []nats.Option{
		nats.Name("elb-agent-" + a.cfg.NodeID),
		nats.CustomInboxPrefix("_INBOX_" + a.cfg.NodeID),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			a.log.Warn("bus disconnected; data plane keeps forwarding", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			a.log.Info("bus reconnected", "server", nc.ConnectedUrlRedacted())
			a.signalReconnect()
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			a.log.Info("bus connected", "server", nc.ConnectedUrlRedacted())
			a.signalReconnect()
		}),
	}
	if a.cfg.User != "" {
		opts = append(opts, nats.UserInfo(a.cfg.User, a.cfg.Password))
	}
	opts = append(opts, a.cfg.NATSOptions...)
	url := ""
	for i, s := range a.cfg.Servers {
		if i > 0 {
			url += ","
		}
		url += s
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("agent %s: connect: %w", a.cfg.NodeID, err)
	}
	defer nc.Close()
	a.mu.Lock()
	a.nc = nc
	a.mu.Unlock()
	if nc.IsConnected() {
		a.signalReconnect()
	}

	var wg sync.WaitGroup
	for _, f := range []func(context.Context, *nats.Conn){
		func(ctx context.Context, _ *nats.Conn) { a.reconcileLoop(ctx, role) },
		a.watchLoop,
		a.publishLoop,
		func(ctx context.Context, nc *nats.Conn) { a.heartbeatLoop(ctx, nc, role) },
		func(ctx context.Context, _ *nats.Conn) { a.sampleLoop(ctx, role) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx, nc)
		}()
	}
	a.Trigger()
	<-ctx.Done()
	wg.Wait()
	// Give queued reports a short chance to leave.
	_ = nc.FlushTimeout(500 * time.Millisecond)
	return nil
}

func (a *Agent) signalReconnect() {
	a.mu.Lock()
	close(a.reconn)
	a.reconn = make(chan struct{})
	a.mu.Unlock()
}

func (a *Agent) reconnectCh() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reconn
}

func (a *Agent) setDesired(cfg *events.NodeConfig) {
	a.mu.Lock()
	a.desired = cfg
	a.mu.Unlock()
	a.Trigger()
}

func (a *Agent) reconcileLoop(ctx context.Context, role Role) {
	resync := time.NewTicker(a.cfg.ResyncInterval)
	defer resync.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff := 500 * time.Millisecond
	var lastReported uint64
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.trigger:
		case <-resync.C:
		case <-retry.C:
		}
		a.mu.Lock()
		cfg := a.desired
		a.mu.Unlock()
		if cfg == nil {
			continue
		}
		err := role.Reconcile(ctx, cfg)
		if ctx.Err() != nil {
			return
		}
		errText := ""
		if err != nil {
			errText = err.Error()
			a.log.Error("reconcile failed; retrying", "version", cfg.Version, "err", err)
			retry.Reset(backoff)
			backoff = min(backoff*2, 30*time.Second)
		} else {
			backoff = 500 * time.Millisecond
			a.mu.Lock()
			changed := a.applied != cfg.Version
			a.applied = cfg.Version
			a.mu.Unlock()
			if changed || lastReported != cfg.Version {
				if err := a.saveState(cfg); err != nil {
					a.log.Error("persist config", "err", err)
				}
			}
		}
		if lastReported != cfg.Version || lastErr != errText {
			lastReported, lastErr = cfg.Version, errText
			a.reportApplied(cfg, errText)
			if err == nil {
				a.log.Info("config applied", "version", cfg.Version)
			}
		}
	}
}

func (a *Agent) reportApplied(cfg *events.NodeConfig, errText string) {
	rep := events.AppliedReport{NodeID: a.cfg.NodeID, Version: cfg.Version, Time: time.Now().UTC(), Error: errText}
	for _, lb := range cfg.LoadBalancers {
		rep.LoadBalancers = append(rep.LoadBalancers, lb.ID)
	}
	a.enqueue(events.ReportApplied, rep, false)
}

// handleEntry decodes one KV value; an invalid one is reported and ignored.
func (a *Agent) handleEntry(role string, value []byte) {
	var cfg events.NodeConfig
	err := json.Unmarshal(value, &cfg)
	if err == nil {
		err = cfg.Validate()
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	} else {
		err = fmt.Errorf("%w: decode: %w", ErrInvalidConfig, err)
	}
	if err == nil && (cfg.NodeID != a.cfg.NodeID || cfg.Role != role) {
		err = fmt.Errorf("%w: node %q role %q", ErrForeignConfig, cfg.NodeID, cfg.Role)
	}
	if err != nil {
		a.log.Error("rejecting desired config; keeping the last good one", "version", cfg.Version, "err", err)
		a.enqueue(events.ReportApplied, events.AppliedReport{NodeID: a.cfg.NodeID, Version: cfg.Version, Time: time.Now().UTC(), Error: err.Error()}, false)
		return
	}
	a.log.Info("desired config received", "version", cfg.Version)
	a.setDesired(&cfg)
}

// watchLoop (re)binds the KV watch after every (re)connect: the ordered
// consumer behind it does not survive a server restart, and the newest value
// comes first on a fresh watch, so a restart resyncs the agent.
func (a *Agent) watchLoop(ctx context.Context, nc *nats.Conn) {
	role := ""
	key := events.DesiredConfigKey(a.cfg.NodeID)
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		reconn := a.reconnectCh()
		if !nc.IsConnected() {
			select {
			case <-ctx.Done():
				return
			case <-reconn:
				continue
			}
		}
		if role == "" {
			// The role is only known through the persisted state or the
			// first value; Run passes it via roleName.
			role = a.roleName()
		}
		err := a.watchOnce(ctx, nc, key, role, reconn)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.log.Warn("desired config watch failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
	}
}

func (a *Agent) watchOnce(ctx context.Context, nc *nats.Conn, key, role string, reconn <-chan struct{}) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	kv, err := js.KeyValue(bctx, events.DesiredConfigBucket)
	cancel()
	if err != nil {
		return fmt.Errorf("bind bucket %s: %w", events.DesiredConfigBucket, err)
	}
	w, err := kv.Watch(ctx, key)
	if err != nil {
		return fmt.Errorf("watch %s: %w", key, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reconn:
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch closed")
			}
			if e == nil { // end of initial values
				continue
			}
			switch e.Operation() {
			case jetstream.KeyValuePut:
				a.handleEntry(role, e.Value())
			default:
				// A deleted key means: serve nothing.
				a.log.Warn("desired config deleted; serving nothing")
				a.mu.Lock()
				var v uint64
				if a.desired != nil {
					v = a.desired.Version
				}
				a.mu.Unlock()
				a.setDesired(&events.NodeConfig{NodeID: a.cfg.NodeID, Role: role, Version: v})
			}
		}
	}
}

func (a *Agent) heartbeatLoop(ctx context.Context, nc *nats.Conn, role Role) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	subj := events.AgentSubject(a.cfg.NodeID, events.ReportHeartbeat)
	for {
		if nc.IsConnected() { // a stale heartbeat is worthless: never buffer one
			hb := events.Heartbeat{NodeID: a.cfg.NodeID, Role: role.Name(), Time: time.Now().UTC(), ConfigVersion: a.AppliedVersion(), Driver: role.Driver(), Address: a.cfg.Address}
			if data, err := json.Marshal(hb); err == nil {
				_ = nc.Publish(subj, data)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maxPublishAttempts bounds retries of one report while connected.
const maxPublishAttempts = 10

// maxPointsPerBatch keeps a batch well below the default 1 MB NATS payload.
const maxPointsPerBatch = 400

func (a *Agent) sampleLoop(ctx context.Context, role Role) {
	t := time.NewTicker(a.cfg.SampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			pts := role.Samples(now)
			if a.stats != nil {
				pts = append(pts, a.stats.Collect(now)...)
			}
			for len(pts) > 0 {
				n := min(len(pts), maxPointsPerBatch)
				a.enqueue(events.ReportSamples, events.SampleBatch{NodeID: a.cfg.NodeID, Role: role.Name(), Time: now.UTC(), Interval: a.cfg.SampleInterval, Points: pts[:n]}, true)
				pts = pts[n:]
			}
		}
	}
}

func (a *Agent) publishLoop(ctx context.Context, nc *nats.Conn) {
	js, err := jetstream.New(nc)
	if err != nil {
		a.log.Error("jetstream context", "err", err)
		return
	}
	for {
		m, ok := a.out.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-a.out.notify:
				continue
			}
		}
		if !nc.IsConnected() {
			a.out.pushFront(m)
			select {
			case <-ctx.Done():
				return
			case <-a.reconnectCh():
			case <-time.After(time.Second):
			}
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.Publish(pctx, m.subject, m.data)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
			// No stream stores this subject: core subscribers got it anyway.
			a.log.Debug("report not stored by any stream", "subject", m.subject)
		default:
			if ctx.Err() != nil {
				return
			}
			m.attempts++
			if m.attempts >= maxPublishAttempts {
				// Connected but refused (permissions, no stream leader ...):
				// do not block every later report behind this one.
				a.log.Error("dropping report after repeated failures", "subject", m.subject, "attempts", m.attempts, "err", err)
				continue
			}
			a.log.Warn("publish report; will retry", "subject", m.subject, "err", err)
			a.out.pushFront(m)
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

func (a *Agent) roleName() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.role
}

func (a *Agent) statePath() string { return filepath.Join(a.cfg.StateDir, StateFile) }

func (a *Agent) loadState(role string) (*events.NodeConfig, error) {
	a.mu.Lock()
	a.role = role
	a.mu.Unlock()
	b, err := os.ReadFile(a.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var cfg events.NodeConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("decode state %s: %w", a.statePath(), err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("state %s: %w", a.statePath(), err)
	}
	if cfg.NodeID != a.cfg.NodeID || cfg.Role != role {
		return nil, fmt.Errorf("state %s: %w", a.statePath(), ErrForeignConfig)
	}
	return &cfg, nil
}

// saveState writes atomically (temp file, fsync, rename).
func (a *Agent) saveState(cfg *events.NodeConfig) error {
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(a.cfg.StateDir, StateFile+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), a.statePath())
}
