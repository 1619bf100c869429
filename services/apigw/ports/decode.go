package ports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/elbcloud/elb/services/apigw/domain"
)

// MaxBody bounds a request body (a batch of members is the largest one).
const MaxBody = 1 << 20

// Opt is a request field that remembers whether it was sent and whether it
// was null, so that updates change only what a client sent and null can
// clear a field.
type Opt[T any] struct {
	Set  bool
	Null bool
	V    T
}

// UnmarshalJSON implements json.Unmarshaler (strictly: unknown fields in
// nested objects are rejected too).
func (o *Opt[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	return strictUnmarshal(b, &o.V)
}

// Has reports a non-null value.
func (o Opt[T]) Has() bool { return o.Set && !o.Null }

// apply copies the field into dst when it was sent (null → zero value).
func (o Opt[T]) apply(dst *T) {
	if !o.Set {
		return
	}
	var zero T
	if o.Null {
		*dst = zero
		return
	}
	*dst = o.V
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// readBody reads at most MaxBody bytes.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, domain.Invalid("", "request body is required")
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: limit is %d bytes", ErrBodyTooLarge, MaxBody)
		}
		return nil, domain.Invalid("", "cannot read request body: %v", err)
	}
	return b, nil
}

// DecodeEnvelope decodes {"<wrapper>": {...}} strictly into v: the body must
// be one JSON object with exactly that key, and v's fields only.
func DecodeEnvelope(body []byte, wrapper string, v any) error {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil || env == nil {
		return domain.Invalid("", "request body must be a JSON object {%q: {...}}", wrapper)
	}
	for k := range env {
		if k != wrapper {
			return domain.Invalid(k, "unknown field (expected the %q envelope)", wrapper)
		}
	}
	inner, ok := env[wrapper]
	if !ok || string(inner) == "null" {
		return domain.Invalid(wrapper, "missing %q envelope", wrapper)
	}
	if t := bytes.TrimSpace(inner); len(t) == 0 || (t[0] != '{' && t[0] != '[') {
		return domain.Invalid(wrapper, "must be a JSON object")
	}
	if err := strictUnmarshal(inner, v); err != nil {
		return fieldOf(inner, v, jsonError(err))
	}
	return nil
}

// fieldOf names the field a decoding error came from (errors raised inside
// Opt lose it): it decodes each field of the object alone into a fresh value
// of v's type and reports the first that fails.
func fieldOf(inner []byte, v any, err error) error {
	var fe *domain.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(inner, &obj) != nil {
		return err
	}
	if _, top := obj[fe.Field]; top {
		return err
	}
	t := reflect.TypeOf(v).Elem()
	for k, raw := range obj {
		one, _ := json.Marshal(map[string]json.RawMessage{k: raw})
		if e := strictUnmarshal(one, reflect.New(t).Interface()); e != nil {
			msg := jsonError(e).Error()
			if inner := (*domain.FieldError)(nil); errors.As(jsonError(e), &inner) && inner.Field != "" && inner.Field != k {
				msg = "field " + inner.Field + ": " + inner.Reason
			} else if inner != nil {
				msg = inner.Reason
			}
			return domain.Invalid(k, "%s", msg)
		}
	}
	return err
}

// jsonError turns a decoding error into a field error.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return domain.Invalid(te.Field, "expected %s, got %s", te.Type.String(), te.Value)
	case errors.As(err, &se):
		return domain.Invalid("", "malformed JSON at offset %d", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return domain.Invalid(f, "unknown field")
	}
	return domain.Invalid("", "malformed request: %v", err)
}

// unsupported rejects a known Octavia field that ELB does not implement,
// unless it was sent empty (null, "", false, [], {} or "NONE").
func unsupported(name string, o Opt[json.RawMessage]) error {
	if !o.Has() {
		return nil
	}
	switch strings.TrimSpace(string(o.V)) {
	case `""`, "false", "[]", "{}", `"NONE"`, "0":
		return nil
	}
	return domain.Invalid(name, "not supported by ELB")
}

func required[T any](name string, o Opt[T]) error {
	if !o.Has() {
		return domain.Invalid(name, "mandatory field missing")
	}
	return nil
}

func immutable[T any](name string, o Opt[T]) error {
	if o.Set {
		return domain.Invalid(name, "cannot be changed after create")
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
