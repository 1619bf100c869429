package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/elbcloud/elb/agents/app"
	_ "github.com/elbcloud/elb/agents/lvs" // registers the lvs role
	"github.com/elbcloud/elb/cmd/elb/internal/cli"
)

// cmdClient is the API client: every subcommand but up and agent.
func cmdClient(args []string, stdout, stderr io.Writer) int {
	return cli.Main(args, stdout, stderr)
}

// cmdAgent runs a data-plane agent in this process until SIGINT/SIGTERM.
func cmdAgent(args []string, stderr io.Writer) int {
	cfg, err := app.ParseFlags(args, os.Getenv)
	if err != nil {
		if errors.Is(err, app.ErrUsage) {
			fmt.Fprintln(stderr, "elb agent:", err)
			return 2
		}
		fmt.Fprintln(stderr, "elb agent:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg); err != nil {
		fmt.Fprintln(stderr, "elb agent:", err)
		return 1
	}
	return 0
}
