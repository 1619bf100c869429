// Package adapters holds the provisioner's outbound side: the desired-config
// bucket, the agents' report stream and the LVS pair registrations.
package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/natsx"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrInvalidConfig is wrapped when a computed node config fails validation
// (a bug upstream: it is never written).
var ErrInvalidConfig = errors.New("invalid node config")

// maxCAS bounds the compare-and-set loop on one key.
const maxCAS = 1000

// Desired writes node configs into the desired-config KV bucket.
type Desired struct {
	kv jetstream.KeyValue

	mu      sync.Mutex
	pending map[string][]*sharedUpdate // node → changes waiting for the writer
	running map[string]bool
}

type sharedUpdate struct {
	mutate func(*events.NodeConfig) bool
	done   chan sharedResult
}

type sharedResult struct {
	version uint64
	err     error
}

// NewDesired opens the bucket (natsx.EnsureTopology creates it).
func NewDesired(ctx context.Context, js jetstream.JetStream) (*Desired, error) {
	kv, err := js.KeyValue(ctx, events.DesiredConfigBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", events.DesiredConfigBucket, err)
	}
	return &Desired{kv: kv, pending: map[string][]*sharedUpdate{}, running: map[string]bool{}}, nil
}

// Update changes one node's config with a compare-and-set on the key, so
// concurrent writers (several load balancers sharing an LVS node) never lose
// each other's changes. The version goes up by one on every write. mutate
// returns false to leave the key unchanged; the current version is returned.
func (d *Desired) Update(ctx context.Context, nodeID, role string, mutate func(*events.NodeConfig) bool) (uint64, error) {
	key := events.DesiredConfigKey(nodeID)
	for range maxCAS {
		var cfg events.NodeConfig
		var rev uint64
		e, err := d.kv.Get(ctx, key)
		switch {
		case err == nil:
			if err := json.Unmarshal(e.Value(), &cfg); err != nil {
				cfg = events.NodeConfig{}
			}
			rev = e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return 0, fmt.Errorf("read desired config of %s: %w", nodeID, err)
		}
		cfg.NodeID, cfg.Role = nodeID, role
		if cfg.LoadBalancers == nil {
			cfg.LoadBalancers = []events.LBConfig{}
		}
		if !mutate(&cfg) {
			return cfg.Version, nil
		}
		cfg.Version++
		if err := cfg.Validate(); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			return 0, fmt.Errorf("encode desired config of %s: %w", nodeID, err)
		}
		if rev == 0 {
			_, err = d.kv.Create(ctx, key, b)
		} else {
			_, err = d.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return cfg.Version, nil
		}
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongSeq(err) {
			continue
		}
		return 0, fmt.Errorf("write desired config of %s: %w", nodeID, err)
	}
	return 0, fmt.Errorf("write desired config of %s: too many concurrent writers", nodeID)
}

// UpdateShared is Update for a key many writers change at once (an LVS
// node carries every load balancer of its pair): changes queued while a
// write is in progress are applied together in the next one, so N
// concurrent publishes cost a few writes instead of N compare-and-set
// rounds. The mutations must commute (each replaces its own entry).
func (d *Desired) UpdateShared(ctx context.Context, nodeID, role string, mutate func(*events.NodeConfig) bool) (uint64, error) {
	u := &sharedUpdate{mutate: mutate, done: make(chan sharedResult, 1)}
	d.mu.Lock()
	d.pending[nodeID] = append(d.pending[nodeID], u)
	if !d.running[nodeID] {
		d.running[nodeID] = true
		go d.flush(nodeID, role)
	}
	d.mu.Unlock()
	select {
	case r := <-u.done:
		return r.version, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (d *Desired) flush(nodeID, role string) {
	for {
		d.mu.Lock()
		batch := d.pending[nodeID]
		delete(d.pending, nodeID)
		if len(batch) == 0 {
			d.running[nodeID] = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		v, err := d.Update(ctx, nodeID, role, func(c *events.NodeConfig) bool {
			changed := false
			for _, u := range batch {
				if u.mutate(c) {
					changed = true
				}
			}
			return changed
		})
		if errors.Is(err, ErrInvalidConfig) && len(batch) > 1 {
			// One bad change must not fail the others: apply them one by one.
			for _, u := range batch {
				v, err := d.Update(ctx, nodeID, role, u.mutate)
				u.done <- sharedResult{v, err}
			}
			cancel()
			continue
		}
		cancel()
		for _, u := range batch {
			u.done <- sharedResult{v, err}
		}
	}
}

func isWrongSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Delete removes a node's key (the agent sees an empty config).
func (d *Desired) Delete(ctx context.Context, nodeID string) error {
	err := d.kv.Delete(ctx, events.DesiredConfigKey(nodeID))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete desired config of %s: %w", nodeID, err)
	}
	return nil
}

// Get reads a node's current desired config (tests, admin views).
func (d *Desired) Get(ctx context.Context, nodeID string) (events.NodeConfig, bool, error) {
	e, err := d.kv.Get(ctx, events.DesiredConfigKey(nodeID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return events.NodeConfig{}, false, nil
	}
	if err != nil {
		return events.NodeConfig{}, false, err
	}
	var cfg events.NodeConfig
	if err := json.Unmarshal(e.Value(), &cfg); err != nil {
		return events.NodeConfig{}, false, fmt.Errorf("decode desired config of %s: %w", nodeID, err)
	}
	return cfg, true, nil
}

// Reports reads the agents' last reports.
type Reports struct {
	reports jetstream.Stream
	hbs     jetstream.Stream
}

// NewReports opens the report and heartbeat streams.
func NewReports(ctx context.Context, js jetstream.JetStream) (*Reports, error) {
	r, err := js.Stream(ctx, events.ReportStream)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", events.ReportStream, err)
	}
	h, err := js.Stream(ctx, natsx.HeartbeatStream)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", natsx.HeartbeatStream, err)
	}
	return &Reports{reports: r, hbs: h}, nil
}

// LastApplied returns the node's last AppliedReport, if any. Reading the
// stream (rather than remembering reports in memory) keeps the workflow
// level-triggered: a restarted provisioner sees the same thing.
func (r *Reports) LastApplied(ctx context.Context, nodeID string) (events.AppliedReport, bool, error) {
	m, err := r.reports.GetLastMsgForSubject(ctx, events.AgentSubject(nodeID, events.ReportApplied))
	if natsx.IsNotFound(err) {
		return events.AppliedReport{}, false, nil
	}
	if err != nil {
		return events.AppliedReport{}, false, fmt.Errorf("last applied report of %s: %w", nodeID, err)
	}
	var rep events.AppliedReport
	if err := json.Unmarshal(m.Data, &rep); err != nil || rep.NodeID != nodeID {
		return events.AppliedReport{}, false, nil // a garbled report counts as none
	}
	return rep, true, nil
}

// LastHeartbeat returns the time of the node's last heartbeat, if any.
func (r *Reports) LastHeartbeat(ctx context.Context, nodeID string) (time.Time, bool, error) {
	m, err := r.hbs.GetLastMsgForSubject(ctx, events.AgentSubject(nodeID, events.ReportHeartbeat))
	if natsx.IsNotFound(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("last heartbeat of %s: %w", nodeID, err)
	}
	var hb events.Heartbeat
	if err := json.Unmarshal(m.Data, &hb); err != nil || hb.NodeID != nodeID {
		return m.Time, true, nil // a garbled heartbeat still says the node talks
	}
	return hb.Time, true, nil
}

// NodeOfSubject returns the node id of an agent report subject.
func NodeOfSubject(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, events.AgentSubjectPrefix)
	if !ok {
		return "", false
	}
	node, _, ok := strings.Cut(rest, ".")
	return node, ok && events.ValidToken(node)
}

// PairNodes returns the node ids of an LVS pair from its last registration.
func PairNodes(ctx context.Context, load func(ctx context.Context, aggType, aggID string) ([]events.Event, uint64, error), pair string) ([]string, error) {
	if pair == "" {
		return nil, nil
	}
	evs, _, err := load(ctx, events.AggLVSPair, pair)
	if err != nil {
		return nil, fmt.Errorf("load lvs pair %s: %w", pair, err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if r, ok := evs[i].Data.(*events.LVSPairRegistered); ok {
			return append([]string(nil), r.Nodes...), nil
		}
	}
	return nil, nil
}

// FormatVersions renders node versions for logs.
func FormatVersions(m map[string]uint64) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+strconv.FormatUint(v, 10))
	}
	return strings.Join(parts, ",")
}
