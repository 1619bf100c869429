package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/consumer"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/provisioner/adapters"
)

// ErrForeignReport is returned for a health report a node may not make: about
// a load balancer it does not serve, or signed with another node's id.
var ErrForeignReport = errors.New("health report from a node that does not serve the load balancer")

// HealthRecorder turns agents' health reports (elb.agent.<node>.health) into
// RealServerUnhealthy / RealServerHealthy events on the load balancer, so the
// API, alarms and the audit log see backends leave and rejoin rotation. The
// agents have already acted on the change; this only records it.
type HealthRecorder struct {
	store *eventstore.Store
	log   *slog.Logger
}

// NewHealthRecorder returns a recorder appending to store.
func NewHealthRecorder(store *eventstore.Store, log *slog.Logger) *HealthRecorder {
	return &HealthRecorder{store: store, log: log}
}

// Handle is a consumer.Handler for the report stream's health subjects.
// Malformed or foreign reports are permanent errors (parked); a report about
// a deleted load balancer is dropped.
func (h *HealthRecorder) Handle(ctx context.Context, m consumer.Msg) error {
	node, ok := adapters.NodeOfSubject(m.Subject)
	if !ok {
		return consumer.Permanent(fmt.Errorf("health report on %q: no node id", m.Subject))
	}
	var r events.HealthReport
	dec := json.NewDecoder(bytes.NewReader(m.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return consumer.Permanent(fmt.Errorf("health report from %s: %w", node, err))
	}
	if err := validHealth(node, r); err != nil {
		return consumer.Permanent(err)
	}
	cmdID := fmt.Sprintf("health-%d", m.Sequence)
	for attempt := 0; attempt < 8; attempt++ {
		evs, version, err := h.store.Load(ctx, events.AggLoadBalancer, r.LoadBalancerID)
		if err != nil {
			return fmt.Errorf("load %s: %w", r.LoadBalancerID, err)
		}
		serves, deleted, last := h.inspect(ctx, evs, r)
		if version == 0 || deleted {
			return nil // gone (or never existed): nothing to record
		}
		if !serves {
			return consumer.Permanent(fmt.Errorf("%w: node %s, load balancer %s", ErrForeignReport, r.NodeID, r.LoadBalancerID))
		}
		if last == stateOf(r.Healthy) {
			return nil // already recorded (redelivery or a repeated report)
		}
		meta := events.Meta{Actor: "agent:" + r.NodeID, CorrelationID: cmdID}
		if len(evs) > 0 {
			meta.ProjectID = evs[0].ProjectID
		}
		var payload any = &events.RealServerHealthy{LoadBalancerID: r.LoadBalancerID, PoolID: r.PoolID, MemberID: r.MemberID,
			Address: r.Address, Port: r.Port, NodeID: r.NodeID}
		if !r.Healthy {
			payload = &events.RealServerUnhealthy{LoadBalancerID: r.LoadBalancerID, PoolID: r.PoolID, MemberID: r.MemberID,
				Address: r.Address, Port: r.Port, NodeID: r.NodeID, Reason: r.Reason}
		}
		env, err := events.New(events.AggLoadBalancer, r.LoadBalancerID, payload, meta)
		if err != nil {
			return consumer.Permanent(err)
		}
		_, err = h.store.Append(ctx, events.AggLoadBalancer, r.LoadBalancerID, version, cmdID, env)
		if errors.Is(err, eventstore.ErrConcurrency) {
			continue
		}
		if err != nil {
			return fmt.Errorf("record health of %s:%d: %w", r.Address, r.Port, err)
		}
		h.log.Info("real server health recorded", "loadbalancer", r.LoadBalancerID, "member", r.MemberID,
			"address", r.Address, "port", r.Port, "node", r.NodeID, "healthy", r.Healthy)
		return nil
	}
	return fmt.Errorf("record health for %s: %w", r.LoadBalancerID, eventstore.ErrConcurrency)
}

type healthState int

const (
	unknown healthState = iota
	up
	down
)

func stateOf(healthy bool) healthState {
	if healthy {
		return up
	}
	return down
}

// inspect reads from the load balancer's history whether the reporting node
// serves it, whether it is deleted, and the last recorded state of the
// reported target as seen by that node.
func (h *HealthRecorder) inspect(ctx context.Context, evs []events.Event, r events.HealthReport) (serves, deleted bool, last healthState) {
	pair := ""
	for _, e := range evs {
		switch d := e.Data.(type) {
		case *events.VMReady:
			if d.NodeID == r.NodeID {
				serves = true
			}
		case *events.VIPAllocated:
			pair = d.LVSPair
		case *events.ELBDeleted:
			deleted = true
		case *events.RealServerHealthy:
			if d.NodeID == r.NodeID && sameTarget(d.MemberID, d.Address, d.Port, r) {
				last = up
			}
		case *events.RealServerUnhealthy:
			if d.NodeID == r.NodeID && sameTarget(d.MemberID, d.Address, d.Port, r) {
				last = down
			}
		}
	}
	if !serves && pair != "" {
		nodes, err := adapters.PairNodes(ctx, h.store.Load, pair)
		if err == nil {
			for _, n := range nodes {
				serves = serves || n == r.NodeID
			}
		}
	}
	return serves, deleted, last
}

func sameTarget(member, addr string, port int, r events.HealthReport) bool {
	if member != "" || r.MemberID != "" {
		return member == r.MemberID
	}
	return addr == r.Address && port == r.Port
}

func validHealth(node string, r events.HealthReport) error {
	switch {
	case r.NodeID != node:
		return fmt.Errorf("%w: report names node %q on node %s's subject", ErrForeignReport, r.NodeID, node)
	case !events.ValidToken(r.LoadBalancerID):
		return fmt.Errorf("health report from %s: invalid loadbalancer_id %q", node, r.LoadBalancerID)
	case r.Port < 1 || r.Port > 65535:
		return fmt.Errorf("health report from %s: port %d out of range", node, r.Port)
	}
	if _, err := netip.ParseAddr(r.Address); err != nil {
		return fmt.Errorf("health report from %s: address: %w", node, err)
	}
	return nil
}
