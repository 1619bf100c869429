// Package app wires an agent: flags, runtime, role and driver. The elb-agent
// binary and the lead's `elb agent ...` command both call Run; the local
// compute driver spawns agents through it.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/elbcloud/elb/agents/l7"
	"github.com/elbcloud/elb/agents/l7/builtin"
	"github.com/elbcloud/elb/agents/l7/nginx"
	"github.com/elbcloud/elb/agents/runtime"
	"github.com/elbcloud/elb/events"
)

// ErrUsage is returned for bad flags or config.
var ErrUsage = errors.New("agent usage")

// Config is everything an agent needs.
type Config struct {
	Role             string // tengine (lvs: added by the L4 role)
	NodeID           string
	Address          string
	AvailabilityZone string
	Servers          []string
	User             string
	Password         string
	StateDir         string
	// Driver picks the data plane: for tengine nginx, builtin or auto
	// (nginx when installed, else builtin).
	Driver      string
	NginxBinary string
	// KeepDataPlane leaves nginx running when the agent stops, so that an
	// agent restart does not interrupt traffic.
	KeepDataPlane bool

	HeartbeatInterval time.Duration
	SampleInterval    time.Duration
	Logger            *slog.Logger
	// NATSOptions are extra client options (tests: nats.InProcessServer).
	NATSOptions []nats.Option
}

// RoleFactory builds a role over the runtime's hooks. The returned closer
// stops the data plane when the agent ends.
type RoleFactory func(cfg Config, hooks runtime.Hooks) (runtime.Role, io.Closer, error)

// roles is the role switch; the lvs role adds itself here.
var roles = map[string]RoleFactory{
	events.RoleTengine: newTengine,
}

// Register adds a role (used by the lvs role's package).
func Register(name string, f RoleFactory) { roles[name] = f }

// ParseFlags parses agent flags; getenv supplies ELB_AGENT_USER and
// ELB_AGENT_PASSWORD when the flags are empty.
func ParseFlags(args []string, getenv func(string) string) (Config, error) {
	fs := flag.NewFlagSet("elb-agent", flag.ContinueOnError)
	var c Config
	var servers string
	fs.StringVar(&c.Role, "role", events.RoleTengine, "agent role: tengine or lvs")
	fs.StringVar(&c.NodeID, "node-id", "", "node id (required)")
	fs.StringVar(&c.Address, "address", "", "node address listeners bind to (default: from the desired config, else 0.0.0.0)")
	fs.StringVar(&c.AvailabilityZone, "az", "", "availability zone reported as a metric dimension")
	fs.StringVar(&servers, "nats", "nats://127.0.0.1:4222", "comma-separated NATS server URLs")
	fs.StringVar(&c.User, "user", "", "NATS user (env ELB_AGENT_USER)")
	fs.StringVar(&c.Password, "password", "", "NATS password (env ELB_AGENT_PASSWORD)")
	fs.StringVar(&c.StateDir, "state-dir", "/var/lib/elb-agent", "directory for the last applied config and data-plane files")
	fs.StringVar(&c.Driver, "driver", "auto", "data-plane driver (tengine: nginx, builtin, auto)")
	fs.StringVar(&c.NginxBinary, "nginx", nginx.DefaultBinary, "nginx binary")
	fs.BoolVar(&c.KeepDataPlane, "keep-data-plane", false, "leave nginx running when the agent stops (restarts, upgrades)")
	fs.DurationVar(&c.SampleInterval, "sample-interval", 10*time.Second, "metric sample interval")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", 2*time.Second, "heartbeat interval")
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	for _, s := range strings.Split(servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Servers = append(c.Servers, s)
		}
	}
	if c.User == "" && getenv != nil {
		c.User = getenv("ELB_AGENT_USER")
	}
	if c.Password == "" && getenv != nil {
		c.Password = getenv("ELB_AGENT_PASSWORD")
	}
	return c, c.validate()
}

func (c Config) validate() error {
	if _, ok := roles[c.Role]; !ok {
		return fmt.Errorf("%w: unknown role %q", ErrUsage, c.Role)
	}
	if !events.ValidToken(c.NodeID) {
		return fmt.Errorf("%w: --node-id %q is not a valid id", ErrUsage, c.NodeID)
	}
	if c.StateDir == "" {
		return fmt.Errorf("%w: --state-dir is required", ErrUsage)
	}
	if len(c.Servers) == 0 && len(c.NATSOptions) == 0 {
		return fmt.Errorf("%w: --nats is required", ErrUsage)
	}
	return nil
}

func defaultLogger() *slog.Logger { return slog.Default() }

// ParseLocalFlags parses the flags of `elb-agent local`.
func ParseLocalFlags(args []string) (LocalConfig, error) {
	fs := flag.NewFlagSet("elb-agent local", flag.ContinueOnError)
	var c LocalConfig
	c.Role = events.RoleTengine
	fs.StringVar(&c.ConfigFile, "config", "", "NodeConfig JSON file (required)")
	fs.StringVar(&c.Address, "address", "", "address listeners bind to when the config has none")
	fs.StringVar(&c.StateDir, "state-dir", "", "directory for data-plane files (required)")
	fs.StringVar(&c.Driver, "driver", "auto", "nginx, builtin or auto")
	fs.StringVar(&c.NginxBinary, "nginx", nginx.DefaultBinary, "nginx binary")
	fs.IntVar(&c.NginxWorkers, "nginx-workers", 0, "nginx worker_processes (0: auto)")
	if err := fs.Parse(args); err != nil {
		return LocalConfig{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if c.ConfigFile == "" || c.StateDir == "" {
		return LocalConfig{}, fmt.Errorf("%w: --config and --state-dir are required", ErrUsage)
	}
	return c, nil
}

// Run runs one agent until ctx ends.
func Run(ctx context.Context, c Config) error {
	if err := c.validate(); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	agent, err := runtime.New(runtime.Config{
		NodeID: c.NodeID, Address: c.Address, Servers: c.Servers, User: c.User, Password: c.Password,
		StateDir: c.StateDir, HeartbeatInterval: c.HeartbeatInterval, SampleInterval: c.SampleInterval,
		Logger: c.Logger, NATSOptions: c.NATSOptions,
	})
	if err != nil {
		return err
	}
	role, closer, err := roles[c.Role](c, agent)
	if err != nil {
		return fmt.Errorf("agent %s role %s: %w", c.NodeID, c.Role, err)
	}
	defer func() {
		if err := closer.Close(); err != nil {
			c.Logger.Error("stop data plane", "err", err)
		}
	}()
	c.Logger.Info("agent starting", "node", c.NodeID, "role", c.Role, "driver", role.Driver())
	return agent.Run(ctx, role)
}

func newTengine(c Config, hooks runtime.Hooks) (runtime.Role, io.Closer, error) {
	drv, err := newL7Driver(c)
	if err != nil {
		return nil, nil, err
	}
	r := l7.NewRole(l7.Options{NodeID: c.NodeID, AvailabilityZone: c.AvailabilityZone, Address: c.Address, Logger: c.Logger}, drv, hooks)
	return r, r, nil
}

func newL7Driver(c Config) (l7.Driver, error) {
	kind := c.Driver
	if kind == "" || kind == "auto" {
		kind = "builtin"
		if nginx.Available(c.NginxBinary) {
			kind = "nginx"
		}
	}
	switch kind {
	case "nginx":
		return nginx.New(nginx.Options{Binary: c.NginxBinary, Dir: filepath.Join(c.StateDir, "nginx"), KeepRunning: c.KeepDataPlane, Logger: c.Logger})
	case "builtin":
		return builtin.New(builtin.Options{Logger: c.Logger}), nil
	default:
		return nil, fmt.Errorf("%w: unknown tengine driver %q (nginx, builtin, auto)", ErrUsage, c.Driver)
	}
}
