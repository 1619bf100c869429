package consumer_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/consumer"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/nats-io/nats.go"
)

func run(t *testing.T, bus *testkit.Bus, cfg consumer.Config, h consumer.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.Run(ctx, bus.JS, cfg, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("consumer: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("consumer did not stop")
		}
	})
}

func appendOne(t *testing.T, st *eventstore.Store, id string) {
	t.Helper()
	e := events.MustNew(events.AggLoadBalancer, id, &events.ELBDeleted{}, events.Meta{})
	if _, err := st.Append(testkit.Context(t, 5*time.Second), events.AggLoadBalancer, id, 0, "", e); err != nil {
		t.Fatal(err)
	}
}

func dlqCount(t *testing.T, bus *testkit.Bus) uint64 {
	t.Helper()
	s, err := bus.JS.Stream(testkit.Context(t, 5*time.Second), events.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testkit.Context(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestPoisonMessagesAreParkedAndConsumerKeepsGoing(t *testing.T) {
	bus := testkit.NATS(t)
	st, err := eventstore.New(testkit.Context(t, 5*time.Second), bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	run(t, bus, consumer.Config{Name: "test-poison"}, consumer.Events(func(_ context.Context, e events.Event) error {
		mu.Lock()
		seen = append(seen, e.AggregateID)
		mu.Unlock()
		return nil
	}))
	appendOne(t, st, "before")
	ctx := testkit.Context(t, 5*time.Second)
	// Garbage bytes, then a well-formed envelope of an unknown type, then
	// a repeated header, straight onto an event subject.
	if _, err := bus.JS.Publish(ctx, "elb.evt.loadbalancer.garbage", []byte("\x00\xffnot json")); err != nil {
		t.Fatal(err)
	}
	unknown := `{"id":"x","type":"NoSuchThing","schema_version":1,"aggregate_type":"loadbalancer","aggregate_id":"u","aggregate_version":1,"occurred_at":"2026-01-01T00:00:00Z","payload":{}}`
	if _, err := bus.JS.Publish(ctx, "elb.evt.loadbalancer.unknown", []byte(unknown)); err != nil {
		t.Fatal(err)
	}
	dup := &nats.Msg{Subject: "elb.evt.loadbalancer.dup", Data: []byte("[]"), Header: nats.Header{"X-Rep": {"a", "b"}}}
	if _, err := bus.JS.PublishMsg(ctx, dup); err != nil {
		t.Fatal(err)
	}
	appendOne(t, st, "after")
	testkit.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 2 && dlqCount(t, bus) == 3
	}, "both good events handled and all three poison messages parked (seen %v)", seen)
	mu.Lock()
	defer mu.Unlock()
	if seen[0] != "before" || seen[1] != "after" {
		t.Fatalf("handled %v", seen)
	}
}

func TestTransientErrorsAreRetriedThenSucceed(t *testing.T) {
	bus := testkit.NATS(t)
	st, _ := eventstore.New(testkit.Context(t, 5*time.Second), bus.JS)
	var calls atomic.Int32
	run(t, bus, consumer.Config{Name: "test-retry", RetryInterval: 5 * time.Millisecond}, consumer.Events(func(context.Context, events.Event) error {
		if calls.Add(1) < 3 {
			return errors.New("database busy")
		}
		return nil
	}))
	appendOne(t, st, "lb")
	testkit.Eventually(t, 10*time.Second, func() bool { return calls.Load() == 3 }, "three attempts (got %d)", calls.Load())
	if n := dlqCount(t, bus); n != 0 {
		t.Fatalf("%d messages parked, want 0", n)
	}
}

func TestPermanentAndExhaustedErrorsArePark(t *testing.T) {
	bus := testkit.NATS(t)
	st, _ := eventstore.New(testkit.Context(t, 5*time.Second), bus.JS)
	var calls atomic.Int32
	run(t, bus, consumer.Config{Name: "test-park", MaxAttempts: 3, RetryInterval: time.Millisecond}, consumer.Events(func(_ context.Context, e events.Event) error {
		calls.Add(1)
		if e.AggregateID == "perm" {
			return consumer.Permanent(errors.New("invalid state"))
		}
		return errors.New("always failing")
	}))
	appendOne(t, st, "perm")
	appendOne(t, st, "flaky")
	testkit.Eventually(t, 10*time.Second, func() bool { return dlqCount(t, bus) == 2 }, "two parked")
	if c := calls.Load(); c != 1+3 {
		t.Fatalf("handler called %d times, want 1 (permanent) + 3 (attempts)", c)
	}
	s, _ := bus.JS.Stream(testkit.Context(t, 5*time.Second), events.DeadLetterStream)
	m, err := s.GetMsg(testkit.Context(t, 5*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(consumer.HeaderDLQError) == "" || m.Header.Get(consumer.HeaderDLQSubject) != "elb.evt.loadbalancer.perm" {
		t.Fatalf("dead letter headers: %v", m.Header)
	}
}

func TestDurableResumesAfterRestart(t *testing.T) {
	bus := testkit.NATS(t)
	st, _ := eventstore.New(testkit.Context(t, 5*time.Second), bus.JS)
	var count atomic.Int32
	h := consumer.Events(func(context.Context, events.Event) error { count.Add(1); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.Run(ctx, bus.JS, consumer.Config{Name: "test-resume"}, h) }()
	appendOne(t, st, "a")
	testkit.Eventually(t, 5*time.Second, func() bool { return count.Load() == 1 }, "first")
	cancel()
	<-done
	appendOne(t, st, "b")
	run(t, bus, consumer.Config{Name: "test-resume"}, h)
	testkit.Eventually(t, 5*time.Second, func() bool { return count.Load() == 2 }, "second only (got %d)", count.Load())
}

func TestStopDuringHandlingRedeliversInsteadOfParking(t *testing.T) {
	bus := testkit.NATS(t)
	st, _ := eventstore.New(testkit.Context(t, 5*time.Second), bus.JS)
	appendOne(t, st, "slow")
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- consumer.Run(ctx, bus.JS, consumer.Config{Name: "test-stop", AckWait: time.Second}, consumer.Events(func(hctx context.Context, _ events.Event) error {
			close(started)
			<-hctx.Done()
			return hctx.Err()
		}))
	}()
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := dlqCount(t, bus); n != 0 {
		t.Fatalf("%d messages parked by a stop", n)
	}
	var got atomic.Int32
	run(t, bus, consumer.Config{Name: "test-stop"}, consumer.Events(func(context.Context, events.Event) error { got.Add(1); return nil }))
	testkit.Eventually(t, 10*time.Second, func() bool { return got.Load() == 1 }, "the interrupted message is delivered again")
}
