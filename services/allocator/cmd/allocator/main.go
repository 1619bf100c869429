// Command allocator runs the VIP allocator against a NATS cluster.
//
//	allocator --nats nats://n1:4222,nats://n2:4222 --user elb-service --password … --config pools.json
//
// The config file is JSON: {"pools": [{"name", "cidrs", "reserved",
// "availability_zone"}], "pairs": [{"name", "nodes", "availability_zone",
// "capacity"}]}; without one the `elb up` loopback pool is served.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/services/allocator"
)

type fileConfig struct {
	Pools []allocator.PoolSpec `json:"pools"`
	Pairs []allocator.Pair     `json:"pairs"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "allocator:", err)
		os.Exit(1)
	}
}

func run() error {
	urls := flag.String("nats", "nats://127.0.0.1:4222", "comma-separated NATS server URLs")
	user := flag.String("user", natsx.ServiceUser, "NATS user")
	password := flag.String("password", os.Getenv("ELB_SERVICE_PASSWORD"), "NATS password (default $ELB_SERVICE_PASSWORD)")
	configPath := flag.String("config", "", "JSON file with pools and pairs")
	replicas := flag.Int("replicas", 1, "stream replicas when creating the topology")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	var fc fileConfig
	if *configPath != "" {
		b, err := os.ReadFile(*configPath)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fc); err != nil {
			return fmt.Errorf("config %s: %w", *configPath, err)
		}
		for _, p := range fc.Pairs {
			if err := p.Validate(); err != nil {
				return fmt.Errorf("config %s: %w", *configPath, err)
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	nc, js, err := natsx.Dial(ctx, natsx.DialConfig{URLs: *urls, User: *user, Password: *password, Name: "elb-allocator", Replicas: *replicas})
	if err != nil {
		return err
	}
	defer nc.Close()
	return allocator.Run(ctx, allocator.Config{JS: js, Pools: fc.Pools, Pairs: fc.Pairs, Logger: log})
}
