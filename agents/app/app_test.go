package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/elbcloud/elb/agents/internal/natstest"
	"github.com/elbcloud/elb/agents/l7/l7test"
	"github.com/elbcloud/elb/agents/runtime"
	"github.com/elbcloud/elb/events"
)

func TestParseFlagsReadsCredentialsFromTheEnvironment(t *testing.T) {
	env := map[string]string{"ELB_AGENT_USER": "agent-n1", "ELB_AGENT_PASSWORD": "pw"}
	c, err := ParseFlags([]string{"--node-id", "n1", "--nats", "nats://a:4222, nats://b:4222", "--driver", "builtin"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.User != "agent-n1" || c.Password != "pw" || len(c.Servers) != 2 || c.Role != events.RoleTengine || c.Driver != "builtin" {
		t.Fatalf("config %+v", c)
	}
	for _, args := range [][]string{
		{"--node-id", ""},
		{"--node-id", "a.b"},
		{"--node-id", "n1", "--role", "dns"},
		{"--node-id", "n1", "--bogus"},
	} {
		if _, err := ParseFlags(args, nil); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: err %v, want ErrUsage", args, err)
		}
	}
}

func TestRunServesTheDesiredConfigWithTheBuiltinDriver(t *testing.T) {
	srv := natstest.Start(t, "n1")
	admin := srv.Admin(t)
	kv := natstest.SetupBus(t, admin)
	b := l7test.StartBackend(t, "m1")
	bind, port := l7test.FreeBind(t)
	natstest.PutConfig(t, kv, events.NodeConfig{NodeID: "n1", Role: events.RoleTengine, Version: 1, Address: "127.0.0.1",
		LoadBalancers: []events.LBConfig{{ID: "lb1", Listeners: []events.ListenerConfig{{ID: "l1", Protocol: "HTTP", Port: port,
			Pool: &events.PoolConfig{ID: "p1", Algorithm: "ROUND_ROBIN", Members: []events.MemberConfig{{ID: "m1", Address: b.Host, Port: b.Port, Weight: 1}}}}}}}}, "n1")
	user, pass := runtime.AgentCredentials(natstest.Secret, "n1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Role: events.RoleTengine, NodeID: "n1", User: user, Password: pass, StateDir: t.TempDir(), Driver: "builtin",
			NATSOptions: []nats.Option{srv.AgentOption()}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	c := l7test.Client()
	defer c.CloseIdleConnections()
	l7test.Eventually(t, 20*time.Second, func() bool {
		code, body, _, err := l7test.Get(c, "http://"+bind+"/")
		return err == nil && code == 200 && body == "m1"
	})
}
