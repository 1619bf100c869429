package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/elbcloud/elb/agents/l7"
	"github.com/elbcloud/elb/agents/l7/nginx"
	"github.com/elbcloud/elb/events"
)

// LocalConfig runs the tengine data plane from a config file, without the
// bus: for benchmarks, debugging and "what would the agent do" questions.
type LocalConfig struct {
	Config
	// ConfigFile holds one events.NodeConfig as JSON.
	ConfigFile string
	// NginxWorkers sets worker_processes (0: auto).
	NginxWorkers int
}

// ReadNodeConfig reads and validates a NodeConfig JSON file.
func ReadNodeConfig(path string) (*events.NodeConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	var cfg events.NodeConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUsage, path, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return &cfg, nil
}

// RunLocal applies the file's config with the chosen L7 driver, keeps
// health-checking and reconciling every 5 s, and stops the data plane when
// ctx ends.
func RunLocal(ctx context.Context, c LocalConfig) error {
	cfg, err := ReadNodeConfig(c.ConfigFile)
	if err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = defaultLogger()
	}
	var drv l7.Driver
	if c.Driver == "nginx" || ((c.Driver == "" || c.Driver == "auto") && nginx.Available(c.NginxBinary)) {
		drv, err = nginx.New(nginx.Options{Binary: c.NginxBinary, Dir: c.StateDir + "/nginx", Logger: c.Logger,
			Render: nginx.RenderOptions{WorkerProcesses: c.NginxWorkers}})
	} else {
		drv, err = newL7Driver(c.Config)
	}
	if err != nil {
		return err
	}
	trig := make(chan struct{}, 1)
	role := l7.NewRole(l7.Options{NodeID: cfg.NodeID, Address: c.Address, AvailabilityZone: c.AvailabilityZone, Logger: c.Logger}, drv, localHooks{c: c, trig: trig})
	defer role.Close()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if err := role.Reconcile(ctx, cfg); err != nil {
			c.Logger.Error("reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-trig:
		}
	}
}

type localHooks struct {
	c    LocalConfig
	trig chan struct{}
}

func (h localHooks) ReportHealth(r events.HealthReport) {
	h.c.Logger.Info("health changed", "member", r.MemberID, "healthy", r.Healthy, "reason", r.Reason)
}

func (h localHooks) Trigger() {
	select {
	case h.trig <- struct{}{}:
	default:
	}
}
