package natsx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Topology sizes the streams; zero values take the defaults.
type Topology struct {
	// Replicas is 1 for the embedded server, 3 on a production cluster.
	Replicas int
	// SampleMaxAge bounds how long unstored samples wait (ClickHouse outage).
	SampleMaxAge time.Duration
}

// StreamConfigs returns every stream ELB needs. The event stream is the
// source of truth: file storage, no limits, direct gets for fast last-message
// lookups, duplicate window for idempotent appends.
func StreamConfigs(t Topology) []jetstream.StreamConfig {
	if t.Replicas == 0 {
		t.Replicas = 1
	}
	if t.SampleMaxAge == 0 {
		t.SampleMaxAge = 24 * time.Hour
	}
	return []jetstream.StreamConfig{
		{
			Name:        events.EventStream,
			Description: "ELB domain events: the source of truth",
			Subjects:    []string{events.EventSubjectPrefix + ">"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			Duplicates:  10 * time.Minute,
			AllowDirect: true,
			Replicas:    t.Replicas,
			DenyDelete:  true,
			DenyPurge:   true,
		},
		{
			Name:        events.DeadLetterStream,
			Description: "messages a consumer could not process, kept for inspection",
			Subjects:    []string{events.DeadLetterSubjectPrefix + ">"},
			Storage:     jetstream.FileStorage,
			MaxAge:      30 * 24 * time.Hour,
			Replicas:    t.Replicas,
		},
		{
			Name:        events.ReportStream,
			Description: "agent reports: config applied, health changes, VRRP state",
			Subjects: []string{
				events.AgentSubjectPrefix + "*." + events.ReportApplied,
				events.AgentSubjectPrefix + "*." + events.ReportHealth,
				events.AgentSubjectPrefix + "*." + events.ReportVRRP,
			},
			Storage:  jetstream.FileStorage,
			MaxAge:   7 * 24 * time.Hour,
			Replicas: t.Replicas,
		},
		{
			Name:              HeartbeatStream,
			Description:       "last heartbeat of every agent",
			Subjects:          []string{events.AgentSubjectPrefix + "*." + events.ReportHeartbeat},
			Storage:           jetstream.FileStorage,
			MaxMsgsPerSubject: 1,
			AllowDirect:       true,
			Replicas:          t.Replicas,
		},
		{
			Name:        events.SampleStream,
			Description: "agent metric samples waiting to be stored",
			Subjects:    []string{events.AgentSubjectPrefix + "*." + events.ReportSamples},
			Storage:     jetstream.FileStorage,
			MaxAge:      t.SampleMaxAge,
			Replicas:    t.Replicas,
		},
	}
}

// HeartbeatStream keeps the last heartbeat per agent.
const HeartbeatStream = "ELB_HEARTBEATS"

// EnsureTopology creates or updates every stream and bucket. It is idempotent
// and safe to run from every service at start-up.
func EnsureTopology(ctx context.Context, js jetstream.JetStream, t Topology) error {
	for _, cfg := range StreamConfigs(t) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	replicas := t.Replicas
	if replicas == 0 {
		replicas = 1
	}
	_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      events.DesiredConfigBucket,
		Description: "desired data-plane config per node",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return fmt.Errorf("ensure bucket %s: %w", events.DesiredConfigBucket, err)
	}
	return nil
}

// IsNotFound reports whether err says a stream, consumer, key or message
// does not exist.
func IsNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrKeyNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound)
}
