package clickhouse_test

import (
	"context"
	"testing"
	"time"

	"github.com/elbcloud/elb/services/stats/adapters/clickhouse"
	"github.com/elbcloud/elb/services/stats/adapters/clickhouse/chtest"
	"github.com/elbcloud/elb/services/stats/app"
	"github.com/elbcloud/elb/services/stats/storetest"
)

func open(t testing.TB, dsn string) *clickhouse.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := clickhouse.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestClickHouseContract(t *testing.T) {
	srv := chtest.Start(t)
	storetest.Run(t, func(t *testing.T) app.Store { return open(t, srv.DSN) })
}
