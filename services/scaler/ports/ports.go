// Package ports are the scaler's inbound adapters: the agent sample reader
// and the event projection callback. They decode and hand over to the app;
// no decisions are taken here.
package ports

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/scaler/app"
)

// NodeOfSubject returns the node id of an agent subject
// (elb.agent.<node>.<kind>) of the given kind.
func NodeOfSubject(subject, kind string) (string, error) {
	rest, ok := strings.CutPrefix(subject, events.AgentSubjectPrefix)
	if !ok {
		return "", fmt.Errorf("%w: subject %q is not an agent subject", app.ErrInvalidSample, subject)
	}
	node, k, ok := strings.Cut(rest, ".")
	if !ok || k != kind || !events.ValidToken(node) {
		return "", fmt.Errorf("%w: subject %q is not an agent %s subject", app.ErrInvalidSample, subject, kind)
	}
	return node, nil
}

// HandleSamples feeds one agent sample batch to the scaler. The node is
// taken from the subject (agents may only publish below their own id); a
// batch naming another node, malformed, stale or from the future is an
// error and changes nothing.
func HandleSamples(svc *app.Service, subject string, data []byte) error {
	node, err := NodeOfSubject(subject, events.ReportSamples)
	if err != nil {
		return err
	}
	var b events.SampleBatch
	if err := json.Unmarshal(data, &b); err != nil {
		return fmt.Errorf("%w: batch of %s: %v", app.ErrInvalidSample, node, err)
	}
	if b.NodeID != "" && b.NodeID != node {
		return fmt.Errorf("%w: batch of node %q published by node %q", app.ErrInvalidSample, b.NodeID, node)
	}
	return svc.Observe(node, b)
}
