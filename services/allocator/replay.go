package allocator

import (
	"context"
	"fmt"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/nats-io/nats.go/jetstream"
)

// guardedStore is the event store whose Replay returns at once when no event
// of the filtered aggregate type exists: eventstore.Replay with a subject
// filter that matches nothing waits for a first match forever.
type guardedStore struct {
	*eventstore.Store
	stream jetstream.Stream
}

func newGuardedStore(ctx context.Context, js jetstream.JetStream) (*guardedStore, error) {
	st, err := eventstore.New(ctx, js)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, events.EventStream)
	if err != nil {
		return nil, fmt.Errorf("open event stream: %w", err)
	}
	return &guardedStore{Store: st, stream: stream}, nil
}

func (g *guardedStore) Replay(ctx context.Context, f eventstore.Filter, fn func(events.Envelope) error) error {
	if f.AggregateType != "" && f.AggregateID == "" && events.ValidToken(f.AggregateType) {
		info, err := g.stream.Info(ctx, jetstream.WithSubjectFilter(events.EventSubjectPrefix+f.AggregateType+".>"))
		if err != nil {
			return fmt.Errorf("replay %s: %w", f.AggregateType, err)
		}
		if len(info.State.Subjects) == 0 {
			return nil
		}
	}
	return g.Store.Replay(ctx, f, fn)
}
