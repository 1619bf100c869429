// Package httpx is the HTTP plumbing every ELB service shares: a gin engine
// with structured request logs, panic recovery that never leaks a stack to a
// client, request metrics, health and readiness probes, Prometheus
// exposition, and a server that shuts down gracefully.
package httpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// Readiness is flipped by a service once it can serve (read models caught up).
type Readiness struct{ ready atomic.Bool }

// Set marks the service ready or not.
func (r *Readiness) Set(v bool) { r.ready.Store(v) }

// Ready reports the current state.
func (r *Readiness) Ready() bool { return r.ready.Load() }

// NewRegistry returns a Prometheus registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Options configure NewEngine.
type Options struct {
	Service  string
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Ready    *Readiness
}

// NewEngine returns a gin engine with logging, recovery, metrics and the
// /healthz, /readyz and /metrics endpoints.
func NewEngine(o Options) *gin.Engine {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = NewRegistry()
	}
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "elb_http_requests_total", Help: "HTTP requests served.",
		ConstLabels: prometheus.Labels{"service": o.Service},
	}, []string{"method", "route", "code"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "elb_http_request_duration_seconds", Help: "HTTP request latency.",
		ConstLabels: prometheus.Labels{"service": o.Service},
		Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"method", "route"})
	_ = o.Registry.Register(reqs)
	_ = o.Registry.Register(dur)

	e := gin.New()
	e.ContextWithFallback = true
	e.HandleMethodNotAllowed = true
	e.Use(func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		code := c.Writer.Status()
		reqs.WithLabelValues(c.Request.Method, route, strconv.Itoa(code)).Inc()
		dur.WithLabelValues(c.Request.Method, route).Observe(time.Since(start).Seconds())
		if route == "/healthz" || route == "/readyz" || route == "/metrics" {
			return
		}
		lvl := slog.LevelDebug
		if code >= 500 {
			lvl = slog.LevelError
		}
		o.Logger.Log(c.Request.Context(), lvl, "http request", "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", code, "duration", time.Since(start), "remote", c.ClientIP())
	})
	e.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, rec any) {
		o.Logger.Error("panic in handler", "path", c.Request.URL.Path, "panic", fmt.Sprint(rec))
		c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{
			"faultcode": "Server", "faultstring": "internal error", "debuginfo": nil, "code": "internal_error",
		})
	}))
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", func(c *gin.Context) {
		if o.Ready != nil && !o.Ready.Ready() {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "starting"})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{})))
	return e
}

// Serve serves h on ln until ctx ends, then shuts down gracefully (in-flight
// requests get up to 10 s).
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
