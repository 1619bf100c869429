// Package natstest runs an in-process, JetStream-enabled NATS server for
// agent tests, with the agent permissions the production server grants, and
// can stop and restart it on the same store dir (bus-outage tests).
package natstest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/natsx"
)

// Secret is the shared agent secret of test servers.
var Secret = []byte("test-secret")

// Server is a restartable in-process server.
type Server struct {
	t        testing.TB
	storeDir string
	users    []*server.User

	mu      sync.Mutex
	srv     *server.Server
	blocked bool
}

// AgentPermissions are the permissions the production server grants
// agent-<nodeID> (natsx.AgentPermissions), so the tests prove the agent
// works with exactly those.
func AgentPermissions(nodeID string) *server.Permissions { return natsx.AgentPermissions(nodeID) }

// Start starts a server with an admin user (no password, full access) and
// agent users for nodeIDs with passwords from Secret.
func Start(t testing.TB, nodeIDs ...string) *Server {
	t.Helper()
	s := &Server{t: t, storeDir: t.TempDir()}
	s.users = append(s.users, &server.User{Username: "admin", Password: "admin"})
	for _, id := range nodeIDs {
		s.users = append(s.users, &server.User{Username: "agent-" + id, Password: password(id), Permissions: AgentPermissions(id)})
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func password(nodeID string) string { return events.AgentPassword(string(Secret), nodeID) }

func (s *Server) start() {
	opts := &server.Options{
		ServerName: "test",
		DontListen: true,
		JetStream:  true,
		StoreDir:   s.storeDir,
		Users:      s.users,
		NoLog:      true,
		NoSigs:     true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		s.t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		s.t.Fatal("nats server not ready")
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

// Stop shuts the server down (idempotent).
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts a new server on the same store dir.
func (s *Server) Restart() {
	s.Stop()
	s.start()
}

// InProcessConn implements nats.InProcessConnProvider for whichever server
// currently runs, so clients reconnect across a restart without any port.
func (s *Server) InProcessConn() (net.Conn, error) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil, fmt.Errorf("nats test server is down")
	}
	return srv.InProcessConn()
}

// AgentOption connects like Option but can be cut off with BlockAgents, so a
// test can change the bus while an agent cannot see it.
func (s *Server) AgentOption() nats.Option { return nats.InProcessServer(agentGate{s}) }

// BlockAgents makes new AgentOption connections fail (existing ones stay).
func (s *Server) BlockAgents(block bool) {
	s.mu.Lock()
	s.blocked = block
	s.mu.Unlock()
}

type agentGate struct{ s *Server }

func (g agentGate) InProcessConn() (net.Conn, error) {
	g.s.mu.Lock()
	blocked := g.s.blocked
	g.s.mu.Unlock()
	if blocked {
		return nil, fmt.Errorf("nats test server: agents blocked")
	}
	return g.s.InProcessConn()
}

// Option is the nats.Option that connects to this server.
func (s *Server) Option() nats.Option { return nats.InProcessServer(s) }

// Admin connects as the admin user.
func (s *Server) Admin(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", s.Option(), nats.UserInfo("admin", "admin"), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatalf("admin connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// AgentPassword is the password of agent-<nodeID>.
func AgentPassword(nodeID string) string { return password(nodeID) }

// SetupBus creates, as the admin, what the control plane owns: the desired
// config bucket and the report and sample streams.
func SetupBus(t testing.TB, nc *nats.Conn) jetstream.KeyValue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.DesiredConfigBucket, History: 1})
	if err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.ReportStream, Subjects: []string{
		events.AgentSubjectPrefix + "*." + events.ReportApplied,
		events.AgentSubjectPrefix + "*." + events.ReportHealth,
		events.AgentSubjectPrefix + "*." + events.ReportVRRP,
	}}); err != nil {
		t.Fatalf("create report stream: %v", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.SampleStream, Subjects: []string{
		events.AgentSubjectPrefix + "*." + events.ReportSamples,
	}}); err != nil {
		t.Fatalf("create sample stream: %v", err)
	}
	return kv
}

// PutConfig stores a node config in the bucket.
func PutConfig(t testing.TB, kv jetstream.KeyValue, cfg any, nodeID string) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kv.Put(ctx, events.DesiredConfigKey(nodeID), b); err != nil {
		t.Fatalf("put config: %v", err)
	}
}

// Eventually polls fn until it returns true or fails the test after timeout.
func Eventually(t testing.TB, timeout time.Duration, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SetupKV binds the existing desired-config bucket (after a restart).
func SetupKV(t testing.TB, nc *nats.Conn) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var kv jetstream.KeyValue
	Eventually(t, 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		kv, err = js.KeyValue(ctx, events.DesiredConfigBucket)
		return err == nil
	})
	return kv
}
