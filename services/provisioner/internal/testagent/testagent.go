// Package testagent stands in for the real agents (built elsewhere) in the
// provisioner's own tests: a child-process agent that connects with its node
// credentials, heartbeats, watches its desired-config key and reports every
// version applied; and an in-process agent that does the same for many nodes
// over the service connection. The lead's end-to-end tests use the real agent.
package testagent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EnvVar switches a test binary into the child agent.
const EnvVar = "ELB_TEST_AGENT"

// Argv is the local driver argv template that runs the child agent from the
// test binary exe.
func Argv(exe string) []string {
	return []string{exe, "{{.NodeID}}", "{{.Address}}", "{{.NATSURL}}", "{{.User}}", "{{.Password}}", "{{.Role}}"}
}

// MaybeRunChild runs the child agent and exits when EnvVar is set; call it
// first thing in TestMain.
func MaybeRunChild() {
	if os.Getenv(EnvVar) != "1" {
		return
	}
	os.Exit(child(os.Args[1:]))
}

func child(args []string) int {
	if len(args) < 6 {
		fmt.Fprintln(os.Stderr, "testagent: want node address nats user password role")
		return 2
	}
	node, addr, url, user, pass, role := args[0], args[1], args[2], args[3], args[4], args[5]
	if strings.Contains(node, "broken") {
		fmt.Fprintln(os.Stderr, "testagent: this node is broken on purpose")
		return 3
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if url == "" || url == "-" {
		<-ctx.Done()
		return 0
	}
	nc, err := nats.Connect(url, nats.UserInfo(user, pass), nats.CustomInboxPrefix("_INBOX_"+node), nats.MaxReconnects(-1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testagent: connect:", err)
		return 4
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 4
	}
	kv, err := js.KeyValue(ctx, events.DesiredConfigBucket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testagent: kv:", err)
		return 4
	}
	w, err := kv.Watch(ctx, events.DesiredConfigKey(node))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testagent: watch:", err)
		return 4
	}
	defer func() { _ = w.Stop() }()
	var mu sync.Mutex
	var applied uint64
	beat := func() {
		mu.Lock()
		hb := events.Heartbeat{NodeID: node, Role: role, Time: time.Now().UTC(), ConfigVersion: applied, Driver: "test", Address: addr}
		mu.Unlock()
		b, _ := json.Marshal(hb)
		_ = nc.Publish(events.AgentSubject(node, events.ReportHeartbeat), b)
	}
	beat()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
			beat()
		case e, ok := <-w.Updates():
			if !ok {
				return 0
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var cfg events.NodeConfig
			rep := events.AppliedReport{NodeID: node, Time: time.Now().UTC()}
			if err := json.Unmarshal(e.Value(), &cfg); err != nil {
				rep.Error = err.Error()
			} else if err := cfg.Validate(); err != nil {
				rep.Error = err.Error()
			}
			rep.Version = cfg.Version
			for _, lb := range cfg.LoadBalancers {
				rep.LoadBalancers = append(rep.LoadBalancers, lb.ID)
			}
			if rep.Error == "" {
				mu.Lock()
				applied = cfg.Version
				mu.Unlock()
			}
			b, _ := json.Marshal(rep)
			_ = nc.Publish(events.AgentSubject(node, events.ReportApplied), b)
			_ = nc.Flush()
		}
	}
}

// InProcess answers for every node whose config accept returns true: it
// watches the whole bucket and publishes an AppliedReport (into the report
// stream) for every version written, plus a heartbeat. It stops with ctx.
func InProcess(ctx context.Context, js jetstream.JetStream, accept func(events.NodeConfig) bool) error {
	kv, err := js.KeyValue(ctx, events.DesiredConfigBucket)
	if err != nil {
		return err
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	go func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil || e.Operation() != jetstream.KeyValuePut {
					continue
				}
				var cfg events.NodeConfig
				if json.Unmarshal(e.Value(), &cfg) != nil || !accept(cfg) {
					continue
				}
				rep := events.AppliedReport{NodeID: cfg.NodeID, Version: cfg.Version, Time: time.Now().UTC()}
				if err := cfg.Validate(); err != nil {
					rep.Error = err.Error()
				}
				for _, lb := range cfg.LoadBalancers {
					rep.LoadBalancers = append(rep.LoadBalancers, lb.ID)
				}
				b, _ := json.Marshal(rep)
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, _ = js.Publish(pctx, events.AgentSubject(cfg.NodeID, events.ReportApplied), b)
				hb, _ := json.Marshal(events.Heartbeat{NodeID: cfg.NodeID, Role: cfg.Role, Time: time.Now().UTC(), ConfigVersion: cfg.Version, Driver: "test"})
				_, _ = js.Publish(pctx, events.AgentSubject(cfg.NodeID, events.ReportHeartbeat), hb)
				cancel()
			}
		}
	}()
	return nil
}
