package statsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Error codes carried in a Reply. They are the wire form of the sentinels.
const (
	CodeInvalidQuery = "invalid_query"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
)

// Reply is the envelope of every answer on the query subjects: exactly one of
// Result and Error is set.
type Reply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *ReplyError     `json:"error,omitempty"`
}

// ReplyError is a failed answer.
type ReplyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Err turns a ReplyError into an error wrapping the matching sentinel.
func (e *ReplyError) Err() error {
	switch e.Code {
	case CodeInvalidQuery:
		return fmt.Errorf("%w: %s", ErrInvalidQuery, e.Message)
	case CodeUnavailable:
		return fmt.Errorf("%w: %s", ErrUnavailable, e.Message)
	default:
		return fmt.Errorf("%w: %s", ErrInternal, e.Message)
	}
}

// CodeOf maps an error to its wire code (used by the responder).
func CodeOf(err error) string {
	switch {
	case errors.Is(err, ErrInvalidQuery):
		return CodeInvalidQuery
	case errors.Is(err, ErrUnavailable):
		return CodeUnavailable
	default:
		return CodeInternal
	}
}

// DefaultTimeout bounds a request when ctx has no deadline.
const DefaultTimeout = 10 * time.Second

// Client queries the stats service over NATS. It is safe for concurrent use.
type Client struct {
	nc *nats.Conn
}

// NewClient returns a Client using nc (which the caller owns and closes).
func NewClient(nc *nats.Conn) *Client { return &Client{nc: nc} }

// GetMetricStatistics answers a CloudWatch-style statistics query. Errors
// wrap ErrInvalidQuery (→ 400), ErrUnavailable (→ 503) or ErrInternal.
func (c *Client) GetMetricStatistics(ctx context.Context, q StatisticsQuery) (StatisticsResult, error) {
	var res StatisticsResult
	err := c.call(ctx, SubjectStatistics, q, &res)
	return res, err
}

// ListMetrics lists the metrics that have stored samples.
func (c *Client) ListMetrics(ctx context.Context, q ListMetricsQuery) (ListMetricsResult, error) {
	var res ListMetricsResult
	err := c.call(ctx, SubjectList, q, &res)
	return res, err
}

// Top returns the top client IPs (kind TopClientIP) or URLs (TopURL) of a
// load balancer per 5-minute window in [start, end). limit 0 means 10.
func (c *Client) Top(ctx context.Context, lbID, kind string, start, end time.Time, limit int) (TopResult, error) {
	var res TopResult
	err := c.call(ctx, SubjectTop, TopQuery{LoadBalancer: lbID, Kind: kind, StartTime: start, EndTime: end, Limit: limit}, &res)
	return res, err
}

// LBStats returns the Octavia statistics of a load balancer (all zero for a
// load balancer without samples).
func (c *Client) LBStats(ctx context.Context, lbID string) (LBStats, error) {
	var res LBStats
	err := c.call(ctx, SubjectLBStats, LBStatsQuery{LoadBalancer: lbID}, &res)
	return res, err
}

func (c *Client) call(ctx context.Context, subject string, req, res any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%w: encode request: %v", ErrInvalidQuery, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	msg, err := c.nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, subject, err)
	}
	var rep Reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return fmt.Errorf("%w: %s: decode reply: %v", ErrInternal, subject, err)
	}
	if rep.Error != nil {
		return rep.Error.Err()
	}
	if err := json.Unmarshal(rep.Result, res); err != nil {
		return fmt.Errorf("%w: %s: decode result: %v", ErrInternal, subject, err)
	}
	return nil
}
