package nginx

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/elbcloud/elb/agents/l7"
)

// The agent reads every access-log line nginx writes, on the same CPUs that
// nginx proxies with, so the parse is on the data plane's budget. parseFast
// reads the exact log_format render.go writes, with no reflection and no
// allocation but the three strings it keeps; anything unusual (an escaped
// character, a field out of order) falls back to encoding/json in parseLine.

// parseAccessLine parses one access-log line.
func parseAccessLine(b []byte) (l7.Request, error) {
	if r, ok := parseFast(b); ok {
		return r, nil
	}
	return parseLine(b)
}

type lineScanner struct {
	b  []byte
	ok bool
}

func (s *lineScanner) lit(l string) {
	if !s.ok || len(s.b) < len(l) || string(s.b[:len(l)]) != l {
		s.ok = false
		return
	}
	s.b = s.b[len(l):]
}

// str reads a JSON string without escapes.
func (s *lineScanner) str() []byte {
	if !s.ok || len(s.b) < 2 || s.b[0] != '"' {
		s.ok = false
		return nil
	}
	end := bytes.IndexByte(s.b[1:], '"')
	if end < 0 {
		s.ok = false
		return nil
	}
	v := s.b[1 : 1+end]
	if bytes.IndexByte(v, '\\') >= 0 {
		s.ok = false // escaped: leave it to encoding/json
		return nil
	}
	s.b = s.b[2+end:]
	return v
}

// num reads a non-negative decimal with an optional fraction, as nginx
// writes $status, $request_time and byte counts.
func (s *lineScanner) num() (whole int64, frac float64) {
	if !s.ok {
		return 0, 0
	}
	i := 0
	for i < len(s.b) && s.b[i] >= '0' && s.b[i] <= '9' {
		whole = whole*10 + int64(s.b[i]-'0')
		i++
	}
	if i == 0 {
		s.ok = false
		return 0, 0
	}
	if i < len(s.b) && s.b[i] == '.' {
		i++
		scale := 0.1
		for i < len(s.b) && s.b[i] >= '0' && s.b[i] <= '9' {
			frac += float64(s.b[i]-'0') * scale
			scale /= 10
			i++
		}
	}
	s.b = s.b[i:]
	return whole, frac
}

func parseFast(b []byte) (l7.Request, bool) {
	s := lineScanner{b: b, ok: true}
	s.lit(`{"l":`)
	l := s.str()
	s.lit(`,"ip":`)
	ip := s.str()
	s.lit(`,"u":`)
	u := s.str()
	s.lit(`,"s":`)
	status, _ := s.num()
	s.lit(`,"us":`)
	us := s.str()
	s.lit(`,"uht":`)
	uht := s.str()
	s.lit(`,"rt":`)
	rtWhole, rtFrac := s.num()
	s.lit(`,"bi":`)
	bi, _ := s.num()
	s.lit(`,"bo":`)
	bo, _ := s.num()
	s.lit(`,"lc":`)
	lc := s.str()
	s.lit(`}`)
	if !s.ok || len(bytes.TrimSpace(s.b)) != 0 {
		return l7.Request{}, false
	}
	if len(u) > maxURL {
		u = u[:maxURL]
	}
	r := l7.Request{
		Listener: string(l), ClientIP: string(ip), URL: string(u), Status: int(status),
		Duration: time.Duration((float64(rtWhole) + rtFrac) * float64(time.Second)),
		BytesIn:  bi, BytesOut: bo, Spillover: string(lc) == "REJECTED",
	}
	// One attempt is the common case: no separators to split.
	if bytes.IndexByte(us, ',') < 0 && bytes.IndexByte(us, ':') < 0 {
		if len(us) == 0 || string(us) == "-" {
			return r, true
		}
		if len(uht) == 0 || string(uht) == "-" {
			r.ConnectErrors = 1
			return r, true
		}
		st, err := strconv.Atoi(string(us))
		if err != nil {
			return l7.Request{}, false
		}
		r.UpstreamStatus = st
		return r, true
	}
	statuses := splitAttempts(string(us))
	headers := splitAttempts(strings.Clone(string(uht)))
	for i, st := range statuses {
		if i >= len(headers) || headers[i] == "-" {
			r.ConnectErrors++
			continue
		}
		if i == len(statuses)-1 {
			r.UpstreamStatus, _ = strconv.Atoi(st)
		}
	}
	return r, true
}
