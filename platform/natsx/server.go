// Package natsx runs the embedded NATS server of the single-machine mode,
// connects services to NATS, and declares every stream and bucket ELB uses.
package natsx

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServiceUser is the NATS user every control-plane service connects as.
const ServiceUser = "elb-service"

// ServerConfig configures the embedded server.
type ServerConfig struct {
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// Listen is host:port for client connections (agents in other processes).
	// Empty means in-process connections only.
	Listen string
	// ServicePassword authenticates ServiceUser. Empty disables auth (tests).
	ServicePassword string
	// AgentSecret derives agent passwords (see AgentPassword). Empty: agents
	// cannot connect.
	AgentSecret string
	// Logger receives the server's notices and errors; nil silences it.
	Logger *slog.Logger
	// UnsafeNoSync turns off the fsync before every ack. Only benchmarks use
	// it, to fill a stream quickly; acked events may then be lost on a crash.
	UnsafeNoSync bool
}

// Server is a running embedded NATS server with JetStream.
type Server struct {
	ns  *server.Server
	cfg ServerConfig
}

// ErrNotReady is returned when the embedded server does not come up in time.
var ErrNotReady = errors.New("nats server not ready")

// StartServer starts an embedded NATS server with JetStream. Every append is
// fsynced before it is acknowledged (SyncAlways): an acked event survives a
// kill -9 or a power loss of the machine, not just of the process.
func StartServer(cfg ServerConfig) (*Server, error) {
	opts := &server.Options{
		ServerName:         "elb-embedded",
		JetStream:          true,
		StoreDir:           cfg.StoreDir,
		SyncAlways:         !cfg.UnsafeNoSync,
		JetStreamMaxMemory: 256 << 20,
		MaxPayload:         8 << 20,
		NoSigs:             true,
		NoLog:              cfg.Logger == nil,
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen address %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("nats listen port %q: %w", port, err)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
	}
	if cfg.ServicePassword != "" {
		opts.CustomClientAuthentication = &authenticator{servicePassword: cfg.ServicePassword, agentSecret: cfg.AgentSecret}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(&slogAdapter{l: cfg.Logger}, false, false, false)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, ErrNotReady
	}
	return &Server{ns: ns, cfg: cfg}, nil
}

// ClientURL is the URL agents in other processes connect to ("" when the
// server does not listen).
func (s *Server) ClientURL() string {
	if s.cfg.Listen == "" {
		return ""
	}
	return s.ns.ClientURL()
}

// Connect opens an in-process connection as the service user.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	all := []nats.Option{nats.InProcessServer(s.ns), nats.Name(name), nats.MaxReconnects(-1)}
	if s.cfg.ServicePassword != "" {
		all = append(all, nats.UserInfo(ServiceUser, s.cfg.ServicePassword))
	}
	nc, err := nats.Connect("", append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect %s in-process: %w", name, err)
	}
	return nc, nil
}

// Shutdown stops the server and waits for it to finish.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// NATS exposes the underlying server (tests use it to restart or inspect).
func (s *Server) NATS() *server.Server { return s.ns }

// AgentUser is events.AgentUser (kept here for callers that configure the server).
func AgentUser(nodeID string) string { return events.AgentUser(nodeID) }

// AgentPassword is events.AgentPassword.
func AgentPassword(secret, nodeID string) string { return events.AgentPassword(secret, nodeID) }

// AgentPermissions are what one agent may do: publish its own reports, read
// its own desired-config key (through a KV watch), use its own inboxes.
func AgentPermissions(nodeID string) *server.Permissions {
	kvStream := "KV_" + events.DesiredConfigBucket
	key := "$KV." + events.DesiredConfigBucket + "." + events.DesiredConfigKey(nodeID)
	inbox := "_INBOX_" + nodeID + ".>"
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			events.AgentSubjectPrefix + nodeID + ".>",
			"$JS.API.INFO",
			"$JS.API.STREAM.INFO." + kvStream,
			"$JS.API.CONSUMER.CREATE." + kvStream + ".*." + key,
			"$JS.API.CONSUMER.DELETE." + kvStream + ".*",
			"$JS.API.CONSUMER.INFO." + kvStream + ".*",
			"$JS.API.CONSUMER.MSG.NEXT." + kvStream + ".*",
			"$JS.API.DIRECT.GET." + kvStream + "." + key,
			"$JS.FC." + kvStream + ".>",
			"$JS.ACK." + kvStream + ".>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{inbox}},
	}
}

type authenticator struct {
	servicePassword string
	agentSecret     string
}

func (a *authenticator) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	switch {
	case o.Username == ServiceUser:
		if subtle.ConstantTimeCompare([]byte(o.Password), []byte(a.servicePassword)) != 1 {
			return false
		}
		c.RegisterUser(&server.User{Username: ServiceUser})
		return true
	case strings.HasPrefix(o.Username, "agent-") && a.agentSecret != "":
		node := strings.TrimPrefix(o.Username, "agent-")
		if !events.ValidToken(node) {
			return false
		}
		want := events.AgentPassword(a.agentSecret, node)
		if subtle.ConstantTimeCompare([]byte(o.Password), []byte(want)) != 1 {
			return false
		}
		c.RegisterUser(&server.User{Username: o.Username, Permissions: AgentPermissions(node)})
		return true
	}
	return false
}

type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any)  {}
