// Package ports holds the provisioner's inbound side: it follows the event
// log and listens to agents' applied reports. Both only wake the reconciler;
// the decisions are made from the event log.
package ports

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/projection"
	"github.com/elbcloud/elb/services/provisioner/adapters"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Kicker is the reconciler as the ports see it.
type Kicker interface {
	Kick(lbID string)
	KickNode(nodeID string)
}

// Follow replays the event log (an ordered consumer: no server-side state,
// no per-message acknowledgement) and then follows it until ctx ends. Once
// the replay has caught up, every load balancer that is not deleted is
// kicked, so whatever was in flight when the last run stopped resumes; after
// that every load balancer event kicks its workflow. Missing a delivery is
// harmless: the reconciler's timer looks at every workflow in flight.
func Follow(ctx context.Context, js jetstream.JetStream, k Kicker, log *slog.Logger) error {
	var mu sync.Mutex
	open := map[string]bool{}
	caught := false
	apply := func(e events.Event) error {
		if e.AggregateType != events.AggLoadBalancer {
			return nil
		}
		mu.Lock()
		if !caught {
			open[e.AggregateID] = e.Type != events.TypeELBDeleted
			mu.Unlock()
			return nil
		}
		mu.Unlock()
		k.Kick(e.AggregateID)
		return nil
	}
	p := projection.New(js, nil, apply, log)
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	select {
	case <-ctx.Done():
	case <-p.CaughtUp():
		mu.Lock()
		caught = true
		ids := make([]string, 0, len(open))
		for id, o := range open {
			if o {
				ids = append(ids, id)
			}
		}
		open = nil
		mu.Unlock()
		for _, id := range ids {
			k.Kick(id)
		}
		log.Info("event log replayed; workflows resumed", "loadbalancers", len(ids), "position", p.Position())
	}
	return <-errc
}

// SubscribeReports kicks the workflows waiting for a node whenever it
// reports an applied config. It is only a latency shortcut: the reconciler
// reads the report stream itself and a timer covers lost notifications.
func SubscribeReports(nc *nats.Conn, k Kicker) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(events.AgentSubjectPrefix+"*."+events.ReportApplied, func(m *nats.Msg) {
		if node, ok := adapters.NodeOfSubject(m.Subject); ok {
			k.KickNode(node)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to applied reports: %w", err)
	}
	return sub, nil
}
