package natsx

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DialConfig says how a separately deployed service reaches the NATS cluster.
type DialConfig struct {
	// URLs is a comma-separated list of server URLs.
	URLs     string
	User     string
	Password string
	// Name identifies the connection in the server's monitoring.
	Name string
	// Replicas of the streams EnsureTopology creates (0: 1).
	Replicas int
}

// Dial connects to NATS (reconnecting forever), opens JetStream and ensures
// ELB's topology: what every service's own main does before Run.
func Dial(ctx context.Context, c DialConfig) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{nats.Name(c.Name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	nc, err := nats.Connect(strings.TrimSpace(c.URLs), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats %s: %w", c.URLs, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := EnsureTopology(tctx, js, Topology{Replicas: c.Replicas}); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
