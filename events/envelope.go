// Package events is the schema of ELB's event log: the envelope every event
// travels in, the catalog of event types and their payloads, the subjects they
// are stored under, and a strict codec. It imports nothing from NATS so that
// agents, services and tools can all depend on it cheaply.
package events

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Envelope is the one JSON shape every event is stored and transported in.
type Envelope struct {
	ID               string          `json:"id"`
	Type             string          `json:"type"`
	SchemaVersion    int             `json:"schema_version"`
	AggregateType    string          `json:"aggregate_type"`
	AggregateID      string          `json:"aggregate_id"`
	AggregateVersion uint64          `json:"aggregate_version"`
	OccurredAt       time.Time       `json:"occurred_at"`
	Actor            string          `json:"actor,omitempty"`
	ProjectID        string          `json:"project_id,omitempty"`
	CorrelationID    string          `json:"correlation_id,omitempty"`
	CausationID      string          `json:"causation_id,omitempty"`
	Payload          json.RawMessage `json:"payload"`
	// Sequence is the position in the event stream. It is set when the event
	// is read back and is never part of what is written.
	Sequence uint64 `json:"sequence,omitempty"`
}

// Event is a decoded envelope: the envelope plus its typed payload (a pointer
// to the payload struct registered for Type, upcast to the current schema).
type Event struct {
	Envelope
	Data any `json:"-"`
}

// Meta carries who did something and why; it is copied into every envelope a
// command produces.
type Meta struct {
	Actor         string
	ProjectID     string
	CorrelationID string
	CausationID   string
}

// NewID returns a random 128-bit identifier in the UUID text form.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// Caused returns meta for an event caused by e: same actor, project and
// correlation, with e as the cause.
func Caused(e Envelope, actor string) Meta {
	return Meta{Actor: actor, ProjectID: e.ProjectID, CorrelationID: e.CorrelationID, CausationID: e.ID}
}
