// Package apigw is ELB's REST API gateway as a library: an OpenStack Octavia
// v2–compatible load-balancer API plus the audit, metrics and OpenAPI
// endpoints, on gin, over the JetStream event store. `elb up` calls Run; the
// standalone binary is cmd/apigw.
package apigw

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/httpx"
	"github.com/elbcloud/elb/platform/projection"
	"github.com/elbcloud/elb/services/apigw/app"
	"github.com/elbcloud/elb/services/apigw/auth"
	"github.com/elbcloud/elb/services/apigw/ports"
	"github.com/elbcloud/elb/services/apigw/readmodel"
	"github.com/elbcloud/elb/services/stats/statsapi"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the embedded OpenAPI document.
func OpenAPI() []byte { return openAPI }

// ErrConfig is wrapped by configuration errors.
var ErrConfig = errors.New("invalid apigw configuration")

// Config wires the gateway.
type Config struct {
	// JS and NC are the bus (NC is used for stats requests). Required.
	JS jetstream.JetStream
	NC *nats.Conn
	// Listener, or else Addr (default 127.0.0.1:9876), is where to serve.
	Listener net.Listener
	Addr     string
	// AdminToken is the bootstrap admin token (project AdminProject,
	// default "admin"). TokensFile is a YAML/JSON token file; Tokens holds
	// "token:project:role[:user]" entries (the ELB_TOKENS format); when
	// empty, the ELB_TOKENS environment variable is read.
	AdminToken   string
	AdminProject string
	TokensFile   string
	Tokens       string
	// KeystoneURL enables Keystone v3 validation of other tokens.
	KeystoneURL string
	// AdminCIDRs limit where admin powers apply (e.g. "127.0.0.0/8"); empty
	// means anywhere.
	AdminCIDRs []string
	// DefaultQuotas per kind (loadbalancer, listener, pool, member,
	// healthmonitor, l7policy, l7rule); missing kinds are unlimited.
	DefaultQuotas map[string]int
	// ProvisionTimeout is the workflow deadline put into ELBRequested and
	// friends (default 10 min).
	ProvisionTimeout time.Duration
	// Stats overrides the stats client (default statsapi over NC).
	Stats    app.Stats
	Logger   *slog.Logger
	Registry *prometheus.Registry
}

// Gateway is a built, not yet running gateway.
type Gateway struct {
	cfg       Config
	log       *slog.Logger
	model     *readmodel.Model
	projector *projection.Projector
	handler   http.Handler
	ready     *httpx.Readiness
}

// Build validates the config and wires the gateway without starting it.
func Build(ctx context.Context, cfg Config) (*Gateway, error) {
	if cfg.JS == nil {
		return nil, fmt.Errorf("%w: JS is required", ErrConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", "apigw")
	var nets []netip.Prefix
	for _, c := range cfg.AdminCIDRs {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("%w: admin CIDR %q: %v", ErrConfig, c, err)
		}
		nets = append(nets, p.Masked())
	}
	for k, v := range cfg.DefaultQuotas {
		if err := app.ValidateQuotas(map[string]int{k: v}); err != nil {
			return nil, fmt.Errorf("%w: default quota: %v", ErrConfig, err)
		}
	}
	tokens := cfg.Tokens
	if tokens == "" {
		tokens = os.Getenv("ELB_TOKENS")
	}
	acfg := auth.Config{AdminToken: cfg.AdminToken, AdminProject: cfg.AdminProject, TokensFile: cfg.TokensFile, TokensEnv: tokens}
	if cfg.KeystoneURL != "" {
		acfg.Validator = auth.NewKeystone(cfg.KeystoneURL, nil)
	}
	authn, err := auth.New(acfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	// The streams must exist (natsx.EnsureTopology, run by `elb up` or the
	// operator): creating them here with a guessed replica count could
	// reconfigure a production cluster.
	store, err := eventstore.New(ctx, cfg.JS)
	if err != nil {
		return nil, err
	}
	model := readmodel.New()
	proj := projection.New(cfg.JS, nil, model.Apply, log)
	stats := cfg.Stats
	if stats == nil && cfg.NC != nil {
		stats = statsapi.NewClient(cfg.NC)
	}
	svc := app.New(store, model, proj, stats, app.Options{DefaultQuotas: cfg.DefaultQuotas,
		ProvisionTimeout: cfg.ProvisionTimeout, Logger: log})
	ready := &httpx.Readiness{}
	engine := httpx.NewEngine(httpx.Options{Service: "apigw", Logger: log, Registry: cfg.Registry, Ready: ready})
	ports.New(svc, authn, ports.Options{AdminCIDRs: nets, Logger: log, OpenAPI: openAPI}).Register(engine)
	return &Gateway{cfg: cfg, log: log, model: model, projector: proj, handler: engine, ready: ready}, nil
}

// Handler is the HTTP API.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Model is the read model (for tests and benchmarks).
func (g *Gateway) Model() *readmodel.Model { return g.model }

// RunProjection follows the event stream into the read model until ctx ends
// and marks the gateway ready once it caught up.
func (g *Gateway) RunProjection(ctx context.Context) error {
	go func() {
		select {
		case <-g.projector.CaughtUp():
			g.ready.Set(true)
			g.log.Info("read model caught up", "position", g.projector.Position())
		case <-ctx.Done():
		}
	}()
	return g.projector.Run(ctx)
}

// CaughtUp is closed once the read model has replayed the stream.
func (g *Gateway) CaughtUp() <-chan struct{} { return g.projector.CaughtUp() }

// Serve runs the projection and the HTTP server until ctx ends.
func (g *Gateway) Serve(ctx context.Context) error {
	ln := g.cfg.Listener
	if ln == nil {
		addr := g.cfg.Addr
		if addr == "" {
			addr = "127.0.0.1:9876"
		}
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("apigw listen %s: %w", addr, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	perr := make(chan error, 1)
	go func() { perr <- g.RunProjection(ctx) }()
	g.log.Info("apigw serving", "addr", ln.Addr().String())
	err := httpx.Serve(ctx, ln, g.handler)
	cancel()
	if perr := <-perr; err == nil && perr != nil {
		err = perr
	}
	return err
}

// Run builds and serves the gateway until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	g, err := Build(ctx, cfg)
	if err != nil {
		return err
	}
	return g.Serve(ctx)
}
