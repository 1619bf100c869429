// Package domain holds the load balancer aggregate of the API gateway: the
// whole Octavia tree of one load balancer (listeners, pools, members, health
// monitors, L7 policies and rules), rebuilt from its events through one apply
// switch, and the commands that decide which events a change records. It does
// no I/O and imports nothing of ours but events.
package domain

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned for a resource that does not exist (or is not the
// caller's: the gateway never tells the difference to a tenant).
var ErrNotFound = errors.New("not found")

// ErrInvalid is wrapped by every validation failure of a request field.
var ErrInvalid = errors.New("invalid input")

// ErrImmutable is returned for a change to a load balancer whose
// provisioning status is PENDING_*: Octavia answers 409 and so do we.
var ErrImmutable = errors.New("load balancer is immutable")

// ErrConflict is returned for a change that clashes with existing state: a
// duplicate listener port or member address, a pool already used as default
// pool, a second monitor on a pool.
var ErrConflict = errors.New("conflict")

// ErrHasChildren is returned for a non-cascade delete of a load balancer that
// still has listeners or pools.
var ErrHasChildren = errors.New("load balancer has children")

// FieldError is a validation failure of one field; it wraps ErrInvalid.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return fmt.Sprintf("invalid input for field/attribute %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Invalid returns a FieldError.
func Invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func notFound(kind, id string) error { return fmt.Errorf("%s %s %w", kind, id, ErrNotFound) }

func conflict(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrConflict)
}
