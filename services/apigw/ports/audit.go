package ports

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/apigw/domain"
	"github.com/elbcloud/elb/services/stats/statsapi"
	"github.com/gin-gonic/gin"
)

// Audit stream bounds.
const (
	DefaultEventLimit = 10000
	MaxEventLimit     = 100000
)

func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		if sec, err2 := strconv.ParseInt(v, 10, 64); err2 == nil && sec >= 0 && sec < 1<<40 {
			return time.Unix(sec, 0).UTC(), nil
		}
		return time.Time{}, domain.Invalid(field, "%q is not an RFC 3339 time or Unix seconds", v)
	}
	return t, nil
}

func parseUint(field, v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, domain.Invalid(field, "%q is not a non-negative integer", v)
	}
	return n, nil
}

// ParseEventFilter reads the audit query parameters.
func ParseEventFilter(q map[string][]string) (eventstore.Filter, int, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	var f eventstore.Filter
	var err error
	f.AggregateType, f.AggregateID, f.ProjectID = get("aggregate_type"), get("aggregate_id"), get("project")
	if f.ProjectID == "" {
		f.ProjectID = get("project_id")
	}
	if f.AggregateID != "" && f.AggregateType == "" {
		f.AggregateType = events.AggLoadBalancer
	}
	f.Types = splitList(q["type"])
	if f.Since, err = parseTime("since", get("since")); err != nil {
		return f, 0, err
	}
	if f.Until, err = parseTime("until", get("until")); err != nil {
		return f, 0, err
	}
	if f.FromSeq, err = parseUint("from_seq", get("from_seq")); err != nil {
		return f, 0, err
	}
	if f.ToSeq, err = parseUint("to_seq", get("to_seq")); err != nil {
		return f, 0, err
	}
	limit := DefaultEventLimit
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxEventLimit {
			return f, 0, domain.Invalid("limit", "must be between 1 and %d", MaxEventLimit)
		}
		limit = n
	}
	if err := f.Validate(); err != nil {
		return f, 0, domain.Invalid("filter", "%v", err)
	}
	return f, limit, nil
}

// listEvents streams the audit log as NDJSON, one envelope per line.
func (s *Server) listEvents(c *gin.Context) {
	f, limit, err := ParseEventFilter(c.Request.URL.Query())
	if err != nil {
		fail(c, err)
		return
	}
	started := false
	n := 0
	w := bufio.NewWriterSize(c.Writer, 32<<10)
	enc := json.NewEncoder(w)
	err = s.svc.Events(c.Request.Context(), cmdOf(c), f, func(r eventstore.RawEvent) error {
		if !started {
			c.Header("Content-Type", "application/x-ndjson")
			c.Status(http.StatusOK)
			started = true
		}
		if err := writeRaw(w, r); err != nil {
			return err
		}
		n++
		if n%256 == 0 {
			_ = w.Flush()
			c.Writer.Flush()
		}
		if n >= limit {
			return eventstore.ErrStop
		}
		return nil
	})
	if err != nil && !started {
		fail(c, err)
		return
	}
	if !started {
		c.Header("Content-Type", "application/x-ndjson")
		c.Status(http.StatusOK)
	}
	if err != nil && !errors.Is(err, eventstore.ErrStop) {
		_, code, msg := classify(err)
		_ = enc.Encode(map[string]string{"error": msg, "code": code})
	}
	_ = w.Flush()
}

// writeRaw writes a stored envelope as one NDJSON line with its stream
// sequence added (stored envelopes never carry it), without decoding it.
func writeRaw(w *bufio.Writer, r eventstore.RawEvent) error {
	b := bytes.TrimRight(r.JSON, " \t\r\n")
	if len(b) < 2 || b[len(b)-1] != '}' {
		return fmt.Errorf("event at %d is not a JSON object", r.Sequence)
	}
	_, _ = w.Write(b[:len(b)-1])
	if len(bytes.TrimSpace(b[1:len(b)-1])) > 0 {
		_ = w.WriteByte(',')
	}
	_, _ = w.WriteString(`"sequence":`)
	_, _ = w.WriteString(strconv.FormatUint(r.Sequence, 10))
	_, err := w.WriteString("}\n")
	return err
}

// parseDimensions reads "Name=Value" pairs (repeatable or comma separated).
func parseDimensions(vals []string) ([]statsapi.Dimension, error) {
	var out []statsapi.Dimension
	for _, p := range splitList(vals) {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" || v == "" || len(k) > 255 || len(v) > 1024 {
			return nil, domain.Invalid("Dimensions", "%q is not Name=Value", p)
		}
		out = append(out, statsapi.Dimension{Name: k, Value: v})
	}
	return out, nil
}

func (s *Server) metricStatistics(c *gin.Context) {
	q := c.Request.URL.Query()
	dims, err := parseDimensions(q["Dimensions"])
	if err != nil {
		fail(c, err)
		return
	}
	start, err := parseTime("StartTime", q.Get("StartTime"))
	if err != nil {
		fail(c, err)
		return
	}
	end, err := parseTime("EndTime", q.Get("EndTime"))
	if err != nil {
		fail(c, err)
		return
	}
	period, err := strconv.ParseInt(q.Get("Period"), 10, 64)
	if err != nil {
		fail(c, domain.Invalid("Period", "%q is not a number of seconds", q.Get("Period")))
		return
	}
	sq := statsapi.StatisticsQuery{MetricName: q.Get("MetricName"), Dimensions: dims, StartTime: start, EndTime: end,
		Period: period, Statistics: splitList(q["Statistics"]), ExtendedStatistics: splitList(q["ExtendedStatistics"])}
	if sq.MetricName == "" {
		fail(c, domain.Invalid("MetricName", "mandatory parameter missing"))
		return
	}
	res, err := s.svc.MetricStatistics(c.Request.Context(), cmdOf(c), sq)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

func (s *Server) listMetrics(c *gin.Context) {
	q := c.Request.URL.Query()
	var lq statsapi.ListMetricsQuery
	lq.MetricName = q.Get("MetricName")
	for _, p := range splitList(q["Dimensions"]) {
		k, v, _ := strings.Cut(p, "=")
		if k == "" || len(k) > 255 || len(v) > 1024 {
			fail(c, domain.Invalid("Dimensions", "%q is not Name[=Value]", p))
			return
		}
		lq.Dimensions = append(lq.Dimensions, statsapi.DimensionFilter{Name: k, Value: v})
	}
	res, err := s.svc.ListMetrics(c.Request.Context(), cmdOf(c), lq)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

func (s *Server) top(c *gin.Context) {
	q := c.Request.URL.Query()
	kind := q.Get("kind")
	if kind == "" {
		kind = statsapi.TopClientIP
	}
	if kind != statsapi.TopClientIP && kind != statsapi.TopURL {
		fail(c, domain.Invalid("kind", "%q is not client_ip or url", kind))
		return
	}
	end, err := parseTime("EndTime", q.Get("EndTime"))
	if err != nil {
		fail(c, err)
		return
	}
	if end.IsZero() {
		end = time.Now().UTC()
	}
	start, err := parseTime("StartTime", q.Get("StartTime"))
	if err != nil {
		fail(c, err)
		return
	}
	if start.IsZero() {
		start = end.Add(-time.Hour)
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 100 {
			fail(c, domain.Invalid("limit", "must be between 1 and 100"))
			return
		}
	}
	res, err := s.svc.Top(c.Request.Context(), cmdOf(c), c.Param("id"), kind, start, end, limit)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}
