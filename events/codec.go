package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"time"
)

// ErrUnknownType is wrapped by decode errors for a type not in the catalog.
var ErrUnknownType = errors.New("unknown event type")

// ErrMalformed is wrapped by decode errors for bytes that are not a valid
// envelope or whose payload does not match the type's schema.
var ErrMalformed = errors.New("malformed event")

// ErrUnsupportedVersion is wrapped by decode errors for a schema version newer
// than this binary knows, or one with no upcaster.
var ErrUnsupportedVersion = errors.New("unsupported schema version")

// DecodeError is returned for any message that cannot be decoded. Consumers
// treat it as permanent: the message is parked, never retried.
type DecodeError struct {
	Type string
	Err  error
}

func (e *DecodeError) Error() string {
	if e.Type == "" {
		return fmt.Sprintf("decode event: %v", e.Err)
	}
	return fmt.Sprintf("decode event %s: %v", e.Type, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// IsDecodeError reports whether err is (or wraps) a DecodeError.
func IsDecodeError(err error) bool {
	var d *DecodeError
	return errors.As(err, &d)
}

// Upcaster turns the raw payload of schema version n into version n+1.
type Upcaster func(raw map[string]any) (map[string]any, error)

type entry struct {
	name      string
	version   int
	factory   func() any
	upcasters []Upcaster // upcasters[i] lifts version i+1 to i+2
}

var (
	byName = map[string]*entry{}
	byType = map[reflect.Type]*entry{}
)

func register(name string, version int, factory func() any, upcasters ...Upcaster) {
	if len(upcasters) != version-1 {
		panic(fmt.Sprintf("events: %s v%d needs %d upcasters", name, version, version-1))
	}
	e := &entry{name: name, version: version, factory: factory, upcasters: upcasters}
	byName[name] = e
	byType[reflect.TypeOf(factory()).Elem()] = e
}

// Types lists every registered event type name, sorted.
func Types() []string {
	out := make([]string, 0, len(byName))
	for n := range byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Known reports whether name is a registered event type.
func Known(name string) bool { _, ok := byName[name]; return ok }

// TypeOf returns the registered type name of a payload value (or pointer).
func TypeOf(data any) (string, bool) {
	t := reflect.TypeOf(data)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	e, ok := byType[t]
	if !ok {
		return "", false
	}
	return e.name, true
}

// New builds an envelope for data (a registered payload struct or pointer to
// one). The aggregate version is filled in by the event store on append.
func New(aggType, aggID string, data any, meta Meta) (Envelope, error) {
	name, ok := TypeOf(data)
	if !ok {
		return Envelope{}, fmt.Errorf("new event: %T: %w", data, ErrUnknownType)
	}
	if aggType == "" || aggID == "" {
		return Envelope{}, fmt.Errorf("new event %s: aggregate type and id are required", name)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("new event %s: %w", name, err)
	}
	return Envelope{
		ID:            NewID(),
		Type:          name,
		SchemaVersion: byName[name].version,
		AggregateType: aggType,
		AggregateID:   aggID,
		OccurredAt:    time.Now().UTC(),
		Actor:         meta.Actor,
		ProjectID:     meta.ProjectID,
		CorrelationID: meta.CorrelationID,
		CausationID:   meta.CausationID,
		Payload:       raw,
	}, nil
}

// MustNew is New for payloads known at compile time; it panics on a payload
// type that is not registered (a programming error, caught by tests).
func MustNew(aggType, aggID string, data any, meta Meta) Envelope {
	e, err := New(aggType, aggID, data, meta)
	if err != nil {
		panic(err)
	}
	return e
}

// Marshal encodes an envelope for storage. Sequence is not stored.
func Marshal(e Envelope) ([]byte, error) {
	e.Sequence = 0
	return json.Marshal(e)
}

// Unmarshal strictly decodes stored bytes into an event with its typed,
// upcast payload. Any failure is a *DecodeError.
func Unmarshal(data []byte) (Event, error) {
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return Event{}, &DecodeError{Err: fmt.Errorf("%w: envelope: %v", ErrMalformed, err)}
	}
	if dec.More() {
		return Event{}, &DecodeError{Err: fmt.Errorf("%w: trailing data after envelope", ErrMalformed)}
	}
	return DecodeEnvelope(env)
}

// DecodeEnvelope validates an envelope and decodes its payload.
func DecodeEnvelope(env Envelope) (Event, error) {
	if env.Type == "" {
		return Event{}, &DecodeError{Err: fmt.Errorf("%w: missing type", ErrMalformed)}
	}
	ent, ok := byName[env.Type]
	if !ok {
		return Event{}, &DecodeError{Type: env.Type, Err: ErrUnknownType}
	}
	if env.ID == "" || env.AggregateType == "" || env.AggregateID == "" {
		return Event{}, &DecodeError{Type: env.Type, Err: fmt.Errorf("%w: id, aggregate_type and aggregate_id are required", ErrMalformed)}
	}
	if env.SchemaVersion < 1 || env.SchemaVersion > ent.version {
		return Event{}, &DecodeError{Type: env.Type, Err: fmt.Errorf("%w: v%d (known up to v%d)", ErrUnsupportedVersion, env.SchemaVersion, ent.version)}
	}
	payload := []byte(env.Payload)
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("{}")
	}
	if env.SchemaVersion < ent.version {
		var raw map[string]any
		if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
			return Event{}, &DecodeError{Type: env.Type, Err: fmt.Errorf("%w: payload is not an object", ErrMalformed)}
		}
		for v := env.SchemaVersion; v < ent.version; v++ {
			next, err := ent.upcasters[v-1](raw)
			if err != nil {
				return Event{}, &DecodeError{Type: env.Type, Err: fmt.Errorf("%w: upcast v%d: %v", ErrMalformed, v, err)}
			}
			raw = next
		}
		b, err := json.Marshal(raw)
		if err != nil {
			return Event{}, &DecodeError{Type: env.Type, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
		}
		payload = b
		env.SchemaVersion = ent.version
		env.Payload = b
	}
	data := ent.factory()
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(data); err != nil {
		return Event{}, &DecodeError{Type: env.Type, Err: fmt.Errorf("%w: payload: %v", ErrMalformed, err)}
	}
	return Event{Envelope: env, Data: data}, nil
}

// upcastMemberV1 lifts MemberAdded v1 (flat: pool_id, address, port, weight)
// to v2 (the member spec nested under "spec", Octavia field names).
func upcastMemberV1(raw map[string]any) (map[string]any, error) {
	id, _ := raw["member_id"].(string)
	if id == "" {
		return nil, errors.New("member_id missing")
	}
	spec := map[string]any{
		"pool_id":        raw["pool_id"],
		"name":           "",
		"address":        raw["address"],
		"protocol_port":  raw["port"],
		"weight":         raw["weight"],
		"admin_state_up": true,
		"backup":         false,
	}
	if spec["weight"] == nil {
		spec["weight"] = 1
	}
	return map[string]any{"member_id": id, "spec": spec}, nil
}
