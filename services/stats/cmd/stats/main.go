// Command stats runs the stats service alone against a NATS server:
//
//	stats -nats nats://127.0.0.1:4222 -clickhouse clickhouse://127.0.0.1:9000/elb
//	stats -nats nats://127.0.0.1:4222 -data-dir /var/lib/elb/stats   # embedded store
//
// Every flag can also be set through the environment variable in brackets.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/elbcloud/elb/platform/httpx"
	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/services/stats/service"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "stats:", err)
		os.Exit(1)
	}
}

func run() error {
	natsURL := flag.String("nats", env("ELB_NATS_URL", nats.DefaultURL), "NATS server URLs, comma separated [ELB_NATS_URL]")
	natsUser := flag.String("nats-user", env("ELB_NATS_USER", ""), "NATS user [ELB_NATS_USER]")
	natsPass := env("ELB_NATS_PASSWORD", "")
	dsn := flag.String("clickhouse", env("ELB_CLICKHOUSE_DSN", ""), "ClickHouse DSN; empty uses the embedded store [ELB_CLICKHOUSE_DSN]")
	dataDir := flag.String("data-dir", env("ELB_STATS_DATA_DIR", ""), "embedded store directory [ELB_STATS_DATA_DIR]")
	retention := flag.Duration("retention", 0, "how long samples are kept (default 15 days ClickHouse, 7 days embedded)")
	metricsAddr := flag.String("metrics", env("ELB_STATS_METRICS", "127.0.0.1:9464"), "listen address of /metrics; empty disables [ELB_STATS_METRICS]")
	flag.Parse()

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	replicas, _ := strconv.Atoi(os.Getenv("ELB_STREAM_REPLICAS"))
	nc, js, err := natsx.Dial(ctx, natsx.DialConfig{URLs: *natsURL, User: *natsUser, Password: natsPass, Name: "elb-stats", Replicas: replicas})
	if err != nil {
		return err
	}
	defer nc.Close()

	reg := httpx.NewRegistry()
	svc, err := service.New(service.Config{NATS: nc, JetStream: js, ClickHouseDSN: *dsn, DataDir: *dataDir, Retention: *retention, Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		srv := &http.Server{Addr: *metricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	return svc.Run(ctx)
}
