package events

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// A commit is what one append stores as one message: one or more events of
// one aggregate, written atomically. Its body is a JSON array of envelopes.

// MarshalCommit encodes the events of one append.
func MarshalCommit(evs []Envelope) ([]byte, error) {
	if len(evs) == 0 {
		return nil, fmt.Errorf("marshal commit: no events")
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, e := range evs {
		if i > 0 {
			buf.WriteByte(',')
		}
		b, err := Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("marshal commit: %w", err)
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}

// UnmarshalCommitEnvelopes decodes a commit's envelopes without decoding the
// payloads (replay and audit use this; it is several times faster).
func UnmarshalCommitEnvelopes(data []byte) ([]Envelope, error) {
	var envs []Envelope
	if err := json.Unmarshal(data, &envs); err != nil {
		return nil, &DecodeError{Err: fmt.Errorf("%w: commit: %v", ErrMalformed, err)}
	}
	if len(envs) == 0 {
		return nil, &DecodeError{Err: fmt.Errorf("%w: empty commit", ErrMalformed)}
	}
	return envs, nil
}

// UnmarshalCommit strictly decodes a commit into typed events.
func UnmarshalCommit(data []byte) ([]Event, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, &DecodeError{Err: fmt.Errorf("%w: commit: %v", ErrMalformed, err)}
	}
	if len(raws) == 0 {
		return nil, &DecodeError{Err: fmt.Errorf("%w: empty commit", ErrMalformed)}
	}
	out := make([]Event, 0, len(raws))
	for _, r := range raws {
		ev, err := Unmarshal(r)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}
