package natsx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func agentConn(t *testing.T, bus *testkit.Bus, node, password string) (*nats.Conn, chan error) {
	t.Helper()
	errs := make(chan error, 16)
	nc, err := nats.Connect(bus.Server.ClientURL(),
		nats.UserInfo(events.AgentUser(node), password),
		nats.CustomInboxPrefix("_INBOX_"+node),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		return nil, errs
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

func TestAgentsReachOnlyTheirOwnConfigAndSubjects(t *testing.T) {
	bus := testkit.NATSWith(t, natsx.ServerConfig{Listen: "127.0.0.1:0", ServicePassword: "svc", AgentSecret: "s3cret"})
	ctx := testkit.Context(t, 20*time.Second)
	kv, err := bus.JS.KeyValue(ctx, events.DesiredConfigBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, events.DesiredConfigKey("n1"), []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, events.DesiredConfigKey("n2"), []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}

	if _, err := nats.Connect(bus.Server.ClientURL(), nats.UserInfo("agent-n1", "wrong")); err == nil {
		t.Fatal("agent with a wrong password connected")
	}
	if _, err := nats.Connect(bus.Server.ClientURL(), nats.UserInfo("agent-n1", events.AgentPassword("other-secret", "n1"))); err == nil {
		t.Fatal("agent with another cluster's password connected")
	}
	if _, err := nats.Connect(bus.Server.ClientURL()); err == nil {
		t.Fatal("anonymous client connected")
	}

	nc, errs := agentConn(t, bus, "n1", events.AgentPassword("s3cret", "n1"))
	if nc == nil {
		t.Fatal("agent n1 could not connect")
	}
	js, _ := jetstream.New(nc)
	akv, err := js.KeyValue(ctx, events.DesiredConfigBucket)
	if err != nil {
		t.Fatalf("agent binds the bucket: %v", err)
	}
	// Its own key: watch delivers the current value, and updates.
	w, err := akv.Watch(ctx, events.DesiredConfigKey("n1"))
	if err != nil {
		t.Fatalf("agent watches its key: %v", err)
	}
	defer func() { _ = w.Stop() }()
	got := func() string {
		for {
			select {
			case e := <-w.Updates():
				if e != nil {
					return string(e.Value())
				}
			case <-ctx.Done():
				t.Fatal("no update")
			}
		}
	}
	if v := got(); v != `{"v":1}` {
		t.Fatalf("first value %s", v)
	}
	if _, err := kv.Put(ctx, events.DesiredConfigKey("n1"), []byte(`{"v":3}`)); err != nil {
		t.Fatal(err)
	}
	if v := got(); v != `{"v":3}` {
		t.Fatalf("update %s", v)
	}
	// Its own reports go into the streams.
	if _, err := js.Publish(ctx, events.AgentSubject("n1", events.ReportApplied), []byte(`{}`)); err != nil {
		t.Fatalf("agent publishes its report: %v", err)
	}
	// Another node's key and subjects are refused.
	octx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if w2, err := akv.Watch(octx, events.DesiredConfigKey("n2")); err == nil {
		select {
		case e := <-w2.Updates():
			if e != nil {
				t.Fatalf("agent n1 read n2's config: %s", e.Value())
			}
		case <-octx.Done():
		}
		_ = w2.Stop()
	}
	if _, err := akv.Get(octx, events.DesiredConfigKey("n2")); err == nil {
		t.Fatal("agent n1 got n2's config")
	}
	_ = nc.Publish(events.AgentSubject("n2", events.ReportApplied), []byte(`{}`))
	_ = nc.Publish(events.EventSubject(events.AggLoadBalancer, "x"), []byte(`{}`))
	_ = nc.Flush()
	deadline := time.After(3 * time.Second)
	var violations int
	for violations < 2 {
		select {
		case err := <-errs:
			if errors.Is(err, nats.ErrPermissionViolation) {
				violations++
			}
		case <-deadline:
			t.Fatalf("%d permission violations reported, want 2", violations)
		}
	}
	s, _ := bus.JS.Stream(ctx, events.ReportStream)
	info, _ := s.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("report stream holds %d messages, want only n1's", info.State.Msgs)
	}
}
