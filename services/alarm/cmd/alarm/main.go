// Command alarm runs the ELB alarm service alone against a NATS server or
// cluster:
//
//	alarm --nats nats://n1:4222,nats://n2:4222 --rules /etc/elb/alarm.json \
//	      --webhook https://ops.example/hook --metrics-addr 127.0.0.1:9472
//	alarm --print-default-rules > alarm.json   # start a rule file from the built-in set
//
// Flags fall back to the environment variables in brackets.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/elbcloud/elb/platform/httpx"
	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/services/alarm"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "alarm:", err)
		os.Exit(1)
	}
}

func run() error {
	urls := flag.String("nats", envOr("ELB_NATS_URLS", nats.DefaultURL), "NATS server URLs, comma separated [ELB_NATS_URLS]")
	user := flag.String("nats-user", os.Getenv("ELB_NATS_USER"), "NATS user [ELB_NATS_USER]; the password is read from ELB_NATS_PASSWORD")
	metricsAddr := flag.String("metrics-addr", envOr("ELB_ALARM_METRICS_ADDR", "127.0.0.1:9472"), "listen address of /metrics, /healthz; empty disables [ELB_ALARM_METRICS_ADDR]")
	rules := flag.String("rules", os.Getenv("ELB_ALARM_RULES"), "JSON rule file merged over the built-in rules [ELB_ALARM_RULES]")
	webhooks := flag.String("webhook", os.Getenv("ELB_ALARM_WEBHOOKS"), "webhook URLs, comma separated [ELB_ALARM_WEBHOOKS]")
	smtpAddr := flag.String("smtp-addr", os.Getenv("ELB_ALARM_SMTP_ADDR"), "SMTP relay host:port [ELB_ALARM_SMTP_ADDR]")
	smtpFrom := flag.String("smtp-from", os.Getenv("ELB_ALARM_SMTP_FROM"), "mail sender [ELB_ALARM_SMTP_FROM]")
	smtpTo := flag.String("smtp-to", os.Getenv("ELB_ALARM_SMTP_TO"), "mail recipients, comma separated [ELB_ALARM_SMTP_TO]")
	smtpUser := flag.String("smtp-user", os.Getenv("ELB_ALARM_SMTP_USER"), "SMTP user [ELB_ALARM_SMTP_USER]; the password is read from ELB_ALARM_SMTP_PASSWORD")
	agentTimeout := flag.Duration("agent-timeout", 5*time.Second, "an agent without heartbeat for this long is alarmed")
	interval := flag.Duration("eval-interval", time.Second, "how often agent liveness and real-server health are evaluated")
	logLevel := flag.String("log-level", envOr("ELB_LOG_LEVEL", "info"), "debug, info, warn or error [ELB_LOG_LEVEL]")
	printRules := flag.Bool("print-default-rules", false, "print the built-in rules as a rule file and exit")
	flag.Parse()

	if *printRules {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(map[string]any{"rules": alarm.DefaultRules()})
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	cfg := alarm.Config{Logger: log, RulesFile: *rules, AgentTimeout: *agentTimeout, EvalInterval: *interval}
	for _, u := range splitList(*webhooks) {
		cfg.Webhooks = append(cfg.Webhooks, alarm.Webhook{URL: u})
	}
	if *smtpAddr != "" {
		cfg.SMTP = &alarm.SMTP{Addr: *smtpAddr, From: *smtpFrom, To: splitList(*smtpTo), Username: *smtpUser,
			Password: os.Getenv("ELB_ALARM_SMTP_PASSWORD")}
	}
	replicas, _ := strconv.Atoi(os.Getenv("ELB_STREAM_REPLICAS"))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc, js, err := natsx.Dial(ctx, natsx.DialConfig{URLs: *urls, User: *user, Password: os.Getenv("ELB_NATS_PASSWORD"), Name: "elb-alarm", Replicas: replicas})
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg.JS, cfg.NC = js, nc
	reg := httpx.NewRegistry()
	cfg.Registerer = reg
	if *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		eng := httpx.NewEngine(httpx.Options{Service: "alarm", Logger: log, Registry: reg})
		go func() {
			if err := httpx.Serve(ctx, ln, eng); err != nil {
				log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	return alarm.Run(ctx, cfg)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
