// Command elb-agent runs one data-plane agent (role tengine or lvs). It
// connects outbound to NATS and has no listening port of its own.
//
//	elb-agent --role tengine --node-id n1 --nats nats://a:4222,nats://b:4222 --state-dir /var/lib/elb-agent
//	elb-agent local --config node.json --state-dir /tmp/x --driver builtin   # no bus: static config
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/elbcloud/elb/agents/app"
	_ "github.com/elbcloud/elb/agents/lvs" // registers the lvs role
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var err error
	if len(os.Args) > 1 && os.Args[1] == "local" {
		var cfg app.LocalConfig
		if cfg, err = app.ParseLocalFlags(os.Args[2:]); err == nil {
			cfg.Logger = logger
			err = app.RunLocal(ctx, cfg)
		}
	} else {
		var cfg app.Config
		if cfg, err = app.ParseFlags(os.Args[1:], os.Getenv); err == nil {
			cfg.Logger = logger
			err = app.Run(ctx, cfg)
		}
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, app.ErrUsage):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	default:
		logger.Error("agent stopped", "err", err)
		os.Exit(1)
	}
}
