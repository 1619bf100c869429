// Command scaler runs the ELB scaler alone against a NATS server or cluster:
//
//	scaler --nats nats://n1:4222,nats://n2:4222 --metrics-addr 127.0.0.1:9471
//
// Flags fall back to the environment variables in brackets.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/elbcloud/elb/platform/httpx"
	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/services/scaler"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scaler:", err)
		os.Exit(1)
	}
}

func run() error {
	urls := flag.String("nats", envOr("ELB_NATS_URLS", nats.DefaultURL), "NATS server URLs, comma separated [ELB_NATS_URLS]")
	user := flag.String("nats-user", os.Getenv("ELB_NATS_USER"), "NATS user [ELB_NATS_USER]; the password is read from ELB_NATS_PASSWORD")
	metricsAddr := flag.String("metrics-addr", envOr("ELB_SCALER_METRICS_ADDR", "127.0.0.1:9471"), "listen address of /metrics, /healthz; empty disables [ELB_SCALER_METRICS_ADDR]")
	interval := flag.Duration("eval-interval", 10*time.Second, "how often every load balancer is evaluated")
	cooldown := flag.Duration("cooldown", 5*time.Minute, "default least time between two load-driven decisions")
	maxNodes := flag.Int("max-nodes", scaler.DefaultPolicy().Max, "default maximum of tengine nodes per load balancer")
	logLevel := flag.String("log-level", envOr("ELB_LOG_LEVEL", "info"), "debug, info, warn or error [ELB_LOG_LEVEL]")
	flag.Parse()

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	pol := scaler.DefaultPolicy()
	pol.Cooldown, pol.Max = *cooldown, max(*maxNodes, pol.Min)
	if err := pol.Validate(); err != nil {
		return err
	}
	replicas, _ := strconv.Atoi(os.Getenv("ELB_STREAM_REPLICAS"))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc, js, err := natsx.Dial(ctx, natsx.DialConfig{URLs: *urls, User: *user, Password: os.Getenv("ELB_NATS_PASSWORD"), Name: "elb-scaler", Replicas: replicas})
	if err != nil {
		return err
	}
	defer nc.Close()
	reg := httpx.NewRegistry()
	if *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		eng := httpx.NewEngine(httpx.Options{Service: "scaler", Logger: log, Registry: reg})
		go func() {
			if err := httpx.Serve(ctx, ln, eng); err != nil {
				log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	return scaler.Run(ctx, scaler.Config{JS: js, NC: nc, Logger: log, Policy: &pol, EvalInterval: *interval, Registerer: reg})
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
