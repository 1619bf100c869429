// Command apigw runs the ELB API gateway alone against a NATS cluster.
//
//	ELB_NATS_URLS=nats://n1:4222,nats://n2:4222 ELB_ADMIN_TOKEN=… apigw --addr 0.0.0.0:9876
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/services/apigw"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "apigw:", err)
		os.Exit(1)
	}
}

func run() error {
	urls := flag.String("nats", envOr("ELB_NATS_URLS", nats.DefaultURL), "NATS server URLs, comma separated [ELB_NATS_URLS]")
	user := flag.String("nats-user", os.Getenv("ELB_NATS_USER"), "NATS user [ELB_NATS_USER]; the password is read from ELB_NATS_PASSWORD")
	addr := flag.String("addr", envOr("ELB_APIGW_ADDR", "127.0.0.1:9876"), "listen address [ELB_APIGW_ADDR]")
	adminToken := flag.String("admin-token", os.Getenv("ELB_ADMIN_TOKEN"), "bootstrap admin token [ELB_ADMIN_TOKEN]")
	tokensFile := flag.String("tokens-file", os.Getenv("ELB_TOKENS_FILE"), "YAML/JSON token file [ELB_TOKENS_FILE]; ELB_TOKENS adds token:project:role[:user] entries")
	keystone := flag.String("keystone-url", os.Getenv("ELB_KEYSTONE_URL"), "Keystone URL for token validation, optional [ELB_KEYSTONE_URL]")
	adminCIDRs := flag.String("admin-cidrs", os.Getenv("ELB_ADMIN_CIDRS"), "comma-separated CIDRs admin powers are limited to [ELB_ADMIN_CIDRS]")
	timeout := flag.Duration("provision-timeout", 10*time.Minute, "deadline of provisioning workflows")
	logLevel := flag.String("log-level", envOr("ELB_LOG_LEVEL", "info"), "debug, info, warn or error [ELB_LOG_LEVEL]")
	flag.Parse()

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	replicas, _ := strconv.Atoi(os.Getenv("ELB_STREAM_REPLICAS"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nc, js, err := natsx.Dial(ctx, natsx.DialConfig{URLs: *urls, User: *user, Password: os.Getenv("ELB_NATS_PASSWORD"), Name: "elb-apigw", Replicas: replicas})
	if err != nil {
		return err
	}
	defer nc.Close()
	var cidrs []string
	if *adminCIDRs != "" {
		cidrs = strings.Split(*adminCIDRs, ",")
	}
	return apigw.Run(ctx, apigw.Config{
		JS: js, NC: nc, Addr: *addr, AdminToken: *adminToken, TokensFile: *tokensFile,
		KeystoneURL: *keystone, AdminCIDRs: cidrs, ProvisionTimeout: *timeout, Logger: log,
	})
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
