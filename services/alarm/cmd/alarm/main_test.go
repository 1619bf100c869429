package main

import (
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/platform/testkit"
)

// TestCommandConnectsServesMetricsAndStopsOnSIGTERM runs the command as an
// operator would: NATS URLs and credentials from the environment, a
// metrics port, SIGTERM to stop.
func TestCommandConnectsServesMetricsAndStopsOnSIGTERM(t *testing.T) {
	bus := testkit.NATSWith(t, natsx.ServerConfig{Listen: "127.0.0.1:0", ServicePassword: "pw"})
	t.Setenv("ELB_NATS_URLS", "nats://127.0.0.1:1,"+bus.Server.ClientURL())
	t.Setenv("ELB_NATS_USER", natsx.ServiceUser)
	t.Setenv("ELB_NATS_PASSWORD", "pw")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	os.Args = []string{"alarm", "--metrics-addr", addr}
	flag.CommandLine = flag.NewFlagSet(os.Args[0], flag.ContinueOnError) // run() defines its flags afresh
	done := make(chan error, 1)
	go func() { done <- run() }()
	var body string
	testkit.Eventually(t, 20*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, "elb_alarm_active")
	}, "metrics served")
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("command did not stop on SIGTERM")
	}
}
