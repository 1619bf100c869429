package main

import (
	"context"
	"log/slog"
	"net"

	"github.com/elbcloud/elb/platform/httpx"
)

// services lists everything `elb up` runs. (Filled in as services land.)
func services(_ context.Context, _ upConfig, _ *bus, ln net.Listener, log *slog.Logger) ([]service, error) {
	eng := httpx.NewEngine(httpx.Options{Service: "apigw", Logger: log})
	return []service{{name: "api", run: func(ctx context.Context) error { return httpx.Serve(ctx, ln, eng) }}}, nil
}
