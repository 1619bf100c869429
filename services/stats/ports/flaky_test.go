package ports_test

import (
	"context"
	"errors"
	"sync"

	"github.com/elbcloud/elb/services/stats/app"
	"github.com/elbcloud/elb/services/stats/domain"
)

var errDown = errors.New("store down")

// flakyStore fails inserts while down.
type flakyStore struct {
	app.Store
	mu    sync.Mutex
	down  bool
	fails int
}

func (f *flakyStore) setDown(v bool) { f.mu.Lock(); f.down = v; f.mu.Unlock() }

func (f *flakyStore) failures() int { f.mu.Lock(); defer f.mu.Unlock(); return f.fails }

func (f *flakyStore) Insert(ctx context.Context, b []domain.Batch) error {
	f.mu.Lock()
	if f.down {
		f.fails++
		f.mu.Unlock()
		return errDown
	}
	f.mu.Unlock()
	return f.Store.Insert(ctx, b)
}
