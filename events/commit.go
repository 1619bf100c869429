package events

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// A commit is what one append stores as one message: one or more events of
// one aggregate, written atomically. Its body is the envelopes as JSON, one
// per line (encoding/json never writes a raw newline inside a value), so a
// reader can split a commit without parsing it.

// MarshalCommit encodes the events of one append.
func MarshalCommit(evs []Envelope) ([]byte, error) {
	if len(evs) == 0 {
		return nil, fmt.Errorf("marshal commit: no events")
	}
	var buf bytes.Buffer
	for i, e := range evs {
		if i > 0 {
			buf.WriteByte('\n')
		}
		b, err := Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("marshal commit: %w", err)
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// SplitCommit returns the raw JSON of each envelope in a commit, without
// copying or parsing. It only checks the framing; decode each part to
// validate it.
func SplitCommit(data []byte) ([][]byte, error) {
	var parts [][]byte
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) < 2 || line[0] != '{' || line[len(line)-1] != '}' {
			return nil, &DecodeError{Err: fmt.Errorf("%w: commit line is not a JSON object", ErrMalformed)}
		}
		parts = append(parts, line)
	}
	if len(parts) == 0 {
		return nil, &DecodeError{Err: fmt.Errorf("%w: empty commit", ErrMalformed)}
	}
	return parts, nil
}

// UnmarshalCommitEnvelopes decodes a commit's envelopes without decoding the
// payloads.
func UnmarshalCommitEnvelopes(data []byte) ([]Envelope, error) {
	parts, err := SplitCommit(data)
	if err != nil {
		return nil, err
	}
	envs := make([]Envelope, len(parts))
	for i, p := range parts {
		if err := json.Unmarshal(p, &envs[i]); err != nil {
			return nil, &DecodeError{Err: fmt.Errorf("%w: envelope: %v", ErrMalformed, err)}
		}
	}
	return envs, nil
}

// UnmarshalCommit strictly decodes a commit into typed events.
func UnmarshalCommit(data []byte) ([]Event, error) {
	parts, err := SplitCommit(data)
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(parts))
	for _, p := range parts {
		ev, err := Unmarshal(p)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}
