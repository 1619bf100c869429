package events

import (
	"fmt"
	"strings"
)

// Streams, subjects and buckets. The names are the contract between services,
// agents and operators; they never change without a migration.
const (
	// EventStream holds every domain event, one subject per aggregate.
	EventStream = "ELB_EVENTS"
	// EventSubjectPrefix is followed by "<aggregate type>.<aggregate id>".
	EventSubjectPrefix = "elb.evt."
	// DeadLetterStream holds messages a consumer could not process.
	DeadLetterStream = "ELB_DLQ"
	// DeadLetterSubjectPrefix is followed by the consumer's durable name.
	DeadLetterSubjectPrefix = "elb.dlq."
	// ReportStream holds agent reports (config applied, health, VRRP state).
	ReportStream = "ELB_REPORTS"
	// SampleStream holds agent metric samples until the stats service stores them.
	SampleStream = "ELB_SAMPLES"
	// AgentSubjectPrefix is followed by "<node id>.<kind>"; an agent may only
	// publish below its own node id.
	AgentSubjectPrefix = "elb.agent."
	// DesiredConfigBucket is the KV bucket of desired data-plane configs, one
	// key per node: "node.<node id>".
	DesiredConfigBucket = "elb_desired"
)

// Agent report kinds (the last token of an agent subject).
const (
	ReportHeartbeat = "heartbeat"
	ReportApplied   = "applied"
	ReportHealth    = "health"
	ReportVRRP      = "vrrp"
	ReportSamples   = "samples"
)

// EventSubject is the subject an aggregate's events are stored under.
func EventSubject(aggType, aggID string) string {
	return EventSubjectPrefix + aggType + "." + aggID
}

// ParseEventSubject splits an event subject into aggregate type and id.
func ParseEventSubject(subject string) (aggType, aggID string, err error) {
	rest, ok := strings.CutPrefix(subject, EventSubjectPrefix)
	if !ok {
		return "", "", fmt.Errorf("subject %q is not an event subject", subject)
	}
	aggType, aggID, ok = strings.Cut(rest, ".")
	if !ok || aggType == "" || aggID == "" {
		return "", "", fmt.Errorf("subject %q has no aggregate", subject)
	}
	return aggType, aggID, nil
}

// AgentSubject is the subject a node publishes one kind of report on.
func AgentSubject(nodeID, kind string) string {
	return AgentSubjectPrefix + nodeID + "." + kind
}

// DesiredConfigKey is a node's key in the desired-config bucket.
func DesiredConfigKey(nodeID string) string { return "node." + nodeID }

// ValidToken reports whether s can be used as one subject token (ids,
// aggregate types, node ids): non-empty, no dots, wildcards or whitespace.
func ValidToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		switch {
		case r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f:
			return false
		}
	}
	return true
}
