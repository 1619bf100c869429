package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/elbcloud/elb/platform/natsx"
)

// upConfig is what `elb up` is told on its command line.
type upConfig struct {
	DataDir     string
	NATSURLs    string
	NATSListen  string
	NATSUser    string
	NATSPass    string
	APIAddr     string
	AdminToken  string
	TokensFile  string
	ClickHouse  string
	AgentDriver string
	LogLevel    string
	L4Driver    string
}

func cmdUp(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c upConfig
	fs.StringVar(&c.DataDir, "data-dir", "./data", "where the embedded NATS server and the services keep their state")
	fs.StringVar(&c.NATSURLs, "nats", "", "comma-separated URLs of an external NATS cluster (default: embedded server)")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:0", "client address of the embedded NATS server (agents connect here)")
	fs.StringVar(&c.NATSUser, "nats-user", os.Getenv("ELB_NATS_USER"), "user for an external NATS cluster")
	fs.StringVar(&c.NATSPass, "nats-password", os.Getenv("ELB_NATS_PASSWORD"), "password for an external NATS cluster")
	fs.StringVar(&c.APIAddr, "api-addr", "127.0.0.1:9876", "address of the REST API")
	fs.StringVar(&c.AdminToken, "admin-token", os.Getenv("ELB_ADMIN_TOKEN"), "bootstrap admin token (generated and printed when unset)")
	fs.StringVar(&c.TokensFile, "tokens-file", os.Getenv("ELB_TOKENS_FILE"), "JSON file of API tokens (token → project, role)")
	fs.StringVar(&c.ClickHouse, "clickhouse", os.Getenv("ELB_CLICKHOUSE_DSN"), "ClickHouse DSN for metrics (default: embedded store in the data dir)")
	fs.StringVar(&c.AgentDriver, "l7-driver", "auto", "L7 driver of local tengine nodes: auto, nginx or builtin")
	fs.StringVar(&c.L4Driver, "l4-driver", "userspace", "L4 driver of the local lvs node: userspace, nftables, ipvs or auto")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "elb up: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		fmt.Fprintf(stderr, "elb up: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := up(ctx, c, stdout, log); err != nil {
		log.Error("elb up failed", "err", err)
		return 1
	}
	return 0
}

// secrets are generated once per data dir and kept there (0600): the agent
// secret must survive restarts so running agents can reconnect.
type secrets struct {
	ServicePassword string `json:"service_password"`
	AgentSecret     string `json:"agent_secret"`
}

func loadSecrets(dir string) (secrets, error) {
	p := filepath.Join(dir, "secrets.json")
	var s secrets
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &s); err != nil || s.ServicePassword == "" || s.AgentSecret == "" {
			return s, fmt.Errorf("%s is damaged; remove it to generate new secrets (running agents must then restart)", p)
		}
		return s, nil
	case !errors.Is(err, os.ErrNotExist):
		return s, err
	}
	s = secrets{ServicePassword: randomHex(24), AgentSecret: randomHex(32)}
	b, _ = json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return s, err
	}
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// bus is the NATS side of a running `elb up`.
type bus struct {
	srv       *natsx.Server // nil with an external cluster
	nc        *nats.Conn
	js        jetstream.JetStream
	agentURL  string // what agents in other processes connect to
	agentSecr string
}

func (b *bus) close() {
	b.nc.Close()
	if b.srv != nil {
		b.srv.Shutdown()
	}
}

func startBus(ctx context.Context, c upConfig, log *slog.Logger) (*bus, error) {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	sec, err := loadSecrets(c.DataDir)
	if err != nil {
		return nil, err
	}
	b := &bus{agentSecr: sec.AgentSecret}
	if c.NATSURLs == "" {
		b.srv, err = natsx.StartServer(natsx.ServerConfig{
			StoreDir:        filepath.Join(c.DataDir, "nats"),
			Listen:          c.NATSListen,
			ServicePassword: sec.ServicePassword,
			AgentSecret:     sec.AgentSecret,
			Logger:          log.With("component", "nats"),
		})
		if err != nil {
			return nil, err
		}
		b.agentURL = b.srv.ClientURL()
		if b.nc, err = b.srv.Connect("elb-up"); err != nil {
			b.srv.Shutdown()
			return nil, err
		}
		if b.js, err = jetstream.New(b.nc); err != nil {
			b.close()
			return nil, err
		}
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := natsx.EnsureTopology(tctx, b.js, natsx.Topology{}); err != nil {
			b.close()
			return nil, err
		}
		return b, nil
	}
	b.nc, b.js, err = natsx.Dial(ctx, natsx.DialConfig{URLs: c.NATSURLs, User: c.NATSUser, Password: c.NATSPass, Name: "elb-up"})
	if err != nil {
		return nil, err
	}
	b.agentURL = c.NATSURLs
	return b, nil
}

// service is one part of the system run by `elb up`.
type service struct {
	name string
	run  func(ctx context.Context) error
}

func up(ctx context.Context, c upConfig, stdout io.Writer, log *slog.Logger) error {
	if c.AdminToken == "" {
		c.AdminToken = randomHex(16)
	}
	b, err := startBus(ctx, c, log)
	if err != nil {
		return err
	}
	defer b.close()
	ln, err := net.Listen("tcp", c.APIAddr)
	if err != nil {
		return fmt.Errorf("api address: %w", err)
	}
	svcs, err := services(ctx, c, b, ln, log)
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintf(stdout, "ELB is up.\n  API:         http://%s\n  admin token: %s\n  NATS:        %s\n  data dir:    %s\n",
		ln.Addr(), c.AdminToken, orEmbedded(b.agentURL, c.NATSURLs), c.DataDir)
	fmt.Fprintf(stdout, "Try:\n  export ELB_ENDPOINT=http://%s ELB_TOKEN=%s\n  elb loadbalancer create --name web --wait\n", ln.Addr(), c.AdminToken)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(svcs))
	for _, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.run(runCtx); err != nil && runCtx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", s.name, err)
			}
		}()
	}
	var first error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case first = <-errc:
		log.Error("service stopped; shutting down", "err", first)
	}
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		log.Warn("some services did not stop within 20 s")
	}
	return first
}

func orEmbedded(agentURL, external string) string {
	if external != "" {
		return external
	}
	return "embedded, " + strings.TrimSpace(agentURL)
}
