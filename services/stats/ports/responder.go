package ports

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/elbcloud/elb/services/stats/statsapi"
)

// Queries is what the responder needs: the app's query handlers.
type Queries interface {
	GetMetricStatistics(ctx context.Context, q statsapi.StatisticsQuery) (statsapi.StatisticsResult, error)
	ListMetrics(ctx context.Context, q statsapi.ListMetricsQuery) (statsapi.ListMetricsResult, error)
	Top(ctx context.Context, q statsapi.TopQuery) (statsapi.TopResult, error)
	LBStats(ctx context.Context, q statsapi.LBStatsQuery) (statsapi.LBStats, error)
}

// ResponderConfig configures the query responder.
type ResponderConfig struct {
	// Concurrency bounds queries answered at once. Default 16.
	Concurrency int
	// Timeout bounds one query. Default 15 s.
	Timeout time.Duration
	Logger  *slog.Logger
	Metrics *Metrics
}

// MaxRequestBytes bounds a query body.
const MaxRequestBytes = 64 << 10

// Responder answers the statsapi subjects over NATS request/reply. Handlers
// only decode, call the app and encode.
type Responder struct {
	nc  *nats.Conn
	q   Queries
	cfg ResponderConfig
	sem chan struct{}
	wg  sync.WaitGroup
}

// NewResponder returns a responder; Run subscribes.
func NewResponder(nc *nats.Conn, q Queries, cfg ResponderConfig) *Responder {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Responder{nc: nc, q: q, cfg: cfg, sem: make(chan struct{}, cfg.Concurrency)}
}

type handler func(ctx context.Context, data []byte) (any, error)

func decode[T any](data []byte) (T, error) {
	var v T
	if len(data) > MaxRequestBytes {
		return v, fmt.Errorf("%w: request of %d bytes, at most %d", statsapi.ErrInvalidQuery, len(data), MaxRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("%w: malformed request: %v", statsapi.ErrInvalidQuery, err)
	}
	return v, nil
}

// Run subscribes to the query subjects (queue group statsapi.QueueGroup)
// and answers until ctx is cancelled; then it drains in-flight queries.
func (r *Responder) Run(ctx context.Context) error {
	routes := map[string]handler{
		statsapi.SubjectStatistics: func(ctx context.Context, d []byte) (any, error) {
			q, err := decode[statsapi.StatisticsQuery](d)
			if err != nil {
				return nil, err
			}
			return r.q.GetMetricStatistics(ctx, q)
		},
		statsapi.SubjectList: func(ctx context.Context, d []byte) (any, error) {
			q, err := decode[statsapi.ListMetricsQuery](d)
			if err != nil {
				return nil, err
			}
			return r.q.ListMetrics(ctx, q)
		},
		statsapi.SubjectTop: func(ctx context.Context, d []byte) (any, error) {
			q, err := decode[statsapi.TopQuery](d)
			if err != nil {
				return nil, err
			}
			return r.q.Top(ctx, q)
		},
		statsapi.SubjectLBStats: func(ctx context.Context, d []byte) (any, error) {
			q, err := decode[statsapi.LBStatsQuery](d)
			if err != nil {
				return nil, err
			}
			return r.q.LBStats(ctx, q)
		},
	}
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
		r.wg.Wait()
	}()
	for subject, h := range routes {
		subject, h := subject, h
		s, err := r.nc.QueueSubscribe(subject, statsapi.QueueGroup, func(m *nats.Msg) {
			r.sem <- struct{}{}
			r.wg.Add(1)
			go func() {
				defer func() { <-r.sem; r.wg.Done() }()
				r.answer(ctx, subject, h, m)
			}()
		})
		if err != nil {
			return fmt.Errorf("responder: subscribe %s: %w", subject, err)
		}
		subs = append(subs, s)
	}
	if err := r.nc.Flush(); err != nil {
		return fmt.Errorf("responder: %w", err)
	}
	<-ctx.Done()
	return nil
}

func (r *Responder) answer(ctx context.Context, subject string, h handler, m *nats.Msg) {
	kind := subject[len("elb.stats.query."):]
	start := time.Now()
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Timeout)
	defer cancel()
	var rep statsapi.Reply
	res, err := func() (res any, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("%w: panic: %v", statsapi.ErrInternal, p)
			}
		}()
		return h(qctx, m.Data)
	}()
	code := "ok"
	if err == nil {
		raw, merr := json.Marshal(res)
		if merr != nil {
			err = fmt.Errorf("%w: encode: %v", statsapi.ErrInternal, merr)
		} else {
			rep.Result = raw
		}
	}
	if err != nil {
		code = statsapi.CodeOf(err)
		rep.Error = &statsapi.ReplyError{Code: code, Message: message(err)}
		if code != statsapi.CodeInvalidQuery {
			r.cfg.Logger.Warn("stats query failed", "subject", subject, "err", err)
		}
	}
	r.cfg.Metrics.Queries.WithLabelValues(kind, code).Inc()
	r.cfg.Metrics.QuerySeconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	body, _ := json.Marshal(rep)
	if m.Reply == "" {
		return
	}
	if err := m.Respond(body); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		r.cfg.Logger.Warn("stats query: respond", "subject", subject, "err", err)
	}
}

// message strips the sentinel prefix the client adds back.
func message(err error) string {
	s := err.Error()
	for _, sent := range []error{statsapi.ErrInvalidQuery, statsapi.ErrUnavailable, statsapi.ErrInternal} {
		if p := sent.Error() + ": "; len(s) > len(p) && s[:len(p)] == p {
			return s[len(p):]
		}
	}
	return s
}
