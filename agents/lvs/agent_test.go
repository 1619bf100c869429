package lvs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/elbcloud/elb/agents/health"
	"github.com/elbcloud/elb/agents/internal/natstest"
	"github.com/elbcloud/elb/agents/l4/userspace"
	"github.com/elbcloud/elb/agents/runtime"
	"github.com/elbcloud/elb/events"
)

// TestAgentServesTheDesiredConfigThroughTheRuntime runs the lvs role on the
// shared runtime against an in-process NATS server: the desired config in
// the bucket becomes a VIP that spreads over the backends, ConfigApplied is
// reported, and a killed backend leaves rotation with a health report.
func TestAgentServesTheDesiredConfigThroughTheRuntime(t *testing.T) {
	const node = "lvs-1"
	srv := natstest.Start(t, node)
	admin := srv.Admin(t)
	kv := natstest.SetupBus(t, admin)

	var mu sync.Mutex
	reports := map[string][][]byte{}
	if _, err := admin.Subscribe(events.AgentSubjectPrefix+node+".>", func(m *nats.Msg) {
		kind := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		mu.Lock()
		reports[kind] = append(reports[kind], m.Data)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}

	// Two loopback backends that name themselves.
	var lns []net.Listener
	var targets []events.Target
	for i := range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "b%d\n", i)
				c.Close()
			}
		}()
		lns = append(lns, ln)
		targets = append(targets, events.Target{ID: fmt.Sprint("m", i), Address: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Weight: 1})
	}
	vip := "127.0.79.20:17200"
	cfg := &events.NodeConfig{NodeID: node, Role: events.RoleLVS, Version: 1, LoadBalancers: []events.LBConfig{{
		ID: "lb-1", VIP: "127.0.79.20", Listeners: []events.ListenerConfig{{
			ID: "l-1", Protocol: "TCP", Port: 17200, Scheduler: "rr", ForwardMethod: "NAT", L4Targets: targets,
		}},
	}}}
	natstest.PutConfig(t, kv, cfg, node)

	user, pass := runtime.AgentCredentials(natstest.Secret, node)
	agent, err := runtime.New(runtime.Config{NodeID: node, StateDir: t.TempDir(), User: user, Password: pass,
		HeartbeatInterval: 50 * time.Millisecond, SampleInterval: 100 * time.Millisecond, ResyncInterval: 200 * time.Millisecond,
		NATSOptions: []nats.Option{srv.Option()}})
	if err != nil {
		t.Fatal(err)
	}
	drv := userspace.New(userspace.Config{})
	role := New(Options{NodeID: node, DrainTimeout: 200 * time.Millisecond,
		DefaultCheck: events.HealthCheckConfig{Type: health.TypeTCP, Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 2}},
		drv, agent)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := agent.Run(ctx, role); err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; role.Close() })

	who := func() string {
		c, err := net.DialTimeout("tcp", vip, time.Second)
		if err != nil {
			return ""
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		s, _ := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(s)
	}
	natstest.Eventually(t, 10*time.Second, func() bool {
		seen := map[string]bool{}
		for range 6 {
			seen[who()] = true
		}
		return seen["b0"] && seen["b1"]
	})
	natstest.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range reports[events.ReportApplied] {
			var r events.AppliedReport
			if json.Unmarshal(b, &r) == nil && r.Version == 1 && r.Error == "" {
				return true
			}
		}
		return false
	})

	lns[1].Close()
	natstest.Eventually(t, 10*time.Second, func() bool {
		for range 6 {
			if who() != "b0" {
				return false
			}
		}
		return true
	})
	natstest.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range reports[events.ReportHealth] {
			var r events.HealthReport
			if json.Unmarshal(b, &r) == nil && r.MemberID == "m1" && !r.Healthy {
				return true
			}
		}
		return false
	})
}
