// Package testkit is what tests across the workspace share: an in-process
// NATS server with JetStream and ELB's topology, and polling helpers.
package testkit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/elbcloud/elb/platform/natsx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bus is a running in-process NATS server with a service connection.
type Bus struct {
	Server *natsx.Server
	Conn   *nats.Conn
	JS     jetstream.JetStream
	Dir    string
}

// NATS starts an in-process NATS server with JetStream in a temp dir (no
// listening port), creates ELB's streams and buckets, and stops everything
// when the test ends.
func NATS(t testing.TB) *Bus {
	t.Helper()
	return NATSWith(t, natsx.ServerConfig{StoreDir: t.TempDir()})
}

// NATSWith is NATS with a custom server config (e.g. a listening port or
// auth for agent tests). StoreDir defaults to a temp dir.
func NATSWith(t testing.TB, cfg natsx.ServerConfig) *Bus {
	t.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	srv, err := natsx.StartServer(cfg)
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	nc, err := srv.Connect("test")
	if err != nil {
		srv.Shutdown()
		t.Fatalf("connect nats: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := natsx.EnsureTopology(ctx, js, natsx.Topology{}); err != nil {
		t.Fatalf("topology: %v", err)
	}
	b := &Bus{Server: srv, Conn: nc, JS: js, Dir: cfg.StoreDir}
	t.Cleanup(func() {
		nc.Close()
		srv.Shutdown()
	})
	return b
}

// Context returns a context cancelled when the test ends or after timeout.
func Context(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// Eventually polls cond every 10 ms until it is true or timeout passes, then
// fails the test with the message.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
