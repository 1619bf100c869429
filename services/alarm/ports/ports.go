// Package ports are the alarm service's inbound adapters: readers of the
// agent sample, heartbeat and health-report streams, and the alarm-event
// consumer that drives notifications. They decode and hand over to the app.
package ports

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/consumer"
	"github.com/elbcloud/elb/services/alarm/app"
)

// NodeOfSubject returns the node id of an agent subject
// (elb.agent.<node>.<kind>) of the given kind.
func NodeOfSubject(subject, kind string) (string, error) {
	rest, ok := strings.CutPrefix(subject, events.AgentSubjectPrefix)
	if !ok {
		return "", fmt.Errorf("%w: subject %q is not an agent subject", app.ErrInvalidInput, subject)
	}
	node, k, ok := strings.Cut(rest, ".")
	if !ok || k != kind || !events.ValidToken(node) {
		return "", fmt.Errorf("%w: subject %q is not an agent %s subject", app.ErrInvalidInput, subject, kind)
	}
	return node, nil
}

// HandleSamples evaluates one agent sample batch. The node is the one in
// the subject (agents may only publish below their own id); a batch naming
// another node, or malformed, is an error and changes nothing.
func HandleSamples(ctx context.Context, svc *app.Service, subject string, data []byte) error {
	node, err := NodeOfSubject(subject, events.ReportSamples)
	if err != nil {
		return err
	}
	var b events.SampleBatch
	if err := json.Unmarshal(data, &b); err != nil {
		return fmt.Errorf("%w: sample batch of %s: %v", app.ErrInvalidInput, node, err)
	}
	if b.NodeID != "" && b.NodeID != node {
		return fmt.Errorf("%w: batch of node %q published by node %q", app.ErrInvalidInput, b.NodeID, node)
	}
	return svc.ObserveSamples(ctx, node, b)
}

// HandleHeartbeat records one agent heartbeat, age old.
func HandleHeartbeat(svc *app.Service, subject string, data []byte, age time.Duration) error {
	node, err := NodeOfSubject(subject, events.ReportHeartbeat)
	if err != nil {
		return err
	}
	var hb events.Heartbeat
	if err := json.Unmarshal(data, &hb); err != nil {
		return fmt.Errorf("%w: heartbeat of %s: %v", app.ErrInvalidInput, node, err)
	}
	if hb.NodeID != "" && hb.NodeID != node {
		return fmt.Errorf("%w: heartbeat of node %q published by node %q", app.ErrInvalidInput, hb.NodeID, node)
	}
	return svc.Heartbeat(node, age)
}

// HandleHealthReport records one agent health report.
func HandleHealthReport(svc *app.Service, subject string, data []byte) error {
	node, err := NodeOfSubject(subject, events.ReportHealth)
	if err != nil {
		return err
	}
	var r events.HealthReport
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%w: health report of %s: %v", app.ErrInvalidInput, node, err)
	}
	if r.NodeID != "" && r.NodeID != node {
		return fmt.Errorf("%w: health report of node %q published by node %q", app.ErrInvalidInput, r.NodeID, node)
	}
	return svc.HealthReport(node, r)
}

// NotifyHandler sends a notification for every alarm event (durable
// consumer: at least once).
func NotifyHandler(svc *app.Service) consumer.Handler {
	return consumer.Events(svc.NotifyEvent)
}
