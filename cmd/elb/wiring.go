package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/elbcloud/elb/agents/app"
	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/httpx"
	"github.com/elbcloud/elb/services/alarm"
	"github.com/elbcloud/elb/services/allocator"
	"github.com/elbcloud/elb/services/apigw"
	"github.com/elbcloud/elb/services/provisioner"
	"github.com/elbcloud/elb/services/provisioner/compute/local"
	"github.com/elbcloud/elb/services/scaler"
	statssvc "github.com/elbcloud/elb/services/stats/service"
)

// localLVSNode and localPair are the single L4 node of `elb up` and the pair
// it forms alone (no VRRP peer on one machine).
const (
	localLVSNode = "lvs-local-1"
	localPair    = "local"
)

// services lists everything `elb up` runs. They share the process but talk
// only over the bus, as they do when deployed separately.
func services(ctx context.Context, c upConfig, b *bus, ln net.Listener, log *slog.Logger) ([]service, error) {
	reg := httpx.NewRegistry()
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary for local agents: %w", err)
	}
	argv := local.DefaultArgv(exe)
	for i := range argv {
		if argv[i] == "--driver" && i+1 < len(argv) {
			argv[i+1] = c.AgentDriver
		}
	}
	driver, err := local.New(ctx, local.Config{
		Argv:        argv,
		DataDir:     c.DataDir, // the driver keeps local-nodes.json and nodes/<id>/ there
		NATSURL:     b.agentURL,
		AgentSecret: b.agentSecr,
		JS:          b.js,
		Logger:      log.With("component", "compute-local"),
	})
	if err != nil {
		return nil, err
	}
	statsSvc, err := statssvc.New(statssvc.Config{
		NATS: b.nc, JetStream: b.js, ClickHouseDSN: c.ClickHouse,
		DataDir: filepath.Join(c.DataDir, "stats"), Registerer: reg, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	lvsCfg := app.Config{
		Role:     events.RoleLVS,
		NodeID:   localLVSNode,
		Servers:  []string{b.agentURL},
		User:     events.AgentUser(localLVSNode),
		Password: events.AgentPassword(b.agentSecr, localLVSNode),
		StateDir: filepath.Join(c.DataDir, "lvs"),
		Driver:   c.L4Driver,
		Logger:   log.With("agent", localLVSNode),
	}
	return []service{
		{"apigw", func(ctx context.Context) error {
			return apigw.Run(ctx, apigw.Config{
				JS: b.js, NC: b.nc, Listener: ln, AdminToken: c.AdminToken, TokensFile: c.TokensFile,
				Registry: reg, Logger: log,
			})
		}},
		{"allocator", func(ctx context.Context) error {
			return allocator.Run(ctx, allocator.Config{
				JS:     b.js,
				Pairs:  []allocator.Pair{{Name: localPair, Nodes: []string{localLVSNode}, Capacity: 1000}},
				Logger: log,
			})
		}},
		{"provisioner", func(ctx context.Context) error {
			return provisioner.Run(ctx, provisioner.Config{
				JS: b.js, NC: b.nc, Driver: driver, Logger: log,
				// Local nodes are processes: they are ready in well under a
				// second, and agents heartbeat every 2 s.
				Deadlines:     provisioner.Deadlines{VMReady: 20 * time.Second},
				NodeLostAfter: 10 * time.Second,
			})
		}},
		{"stats", statsSvc.Run},
		{"scaler", func(ctx context.Context) error {
			return scaler.Run(ctx, scaler.Config{JS: b.js, NC: b.nc, Registerer: reg, Logger: log})
		}},
		{"alarm", func(ctx context.Context) error {
			return alarm.Run(ctx, alarm.Config{JS: b.js, NC: b.nc, Registerer: reg, Logger: log})
		}},
		{"lvs-agent", func(ctx context.Context) error { return app.Run(ctx, lvsCfg) }},
	}, nil
}
