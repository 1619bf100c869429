package eventstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Every benchmark reports events/s; the Raw* ones are plain JetStream on the
// same server and payloads, for the side-by-side figures in
// docs/performance.md.

func payload(b *testing.B) []byte {
	e := memberAdded(1)
	e.AggregateVersion = 1
	body, err := events.MarshalCommit([]events.Envelope{e})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func BenchmarkRawPublish(b *testing.B) {
	bus := testkit.NATS(b)
	body := payload(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := bus.JS.Publish(ctx, fmt.Sprintf("elb.evt.loadbalancer.raw%d", i%100), body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkAppendSingle(b *testing.B) {
	bus := testkit.NATS(b)
	ctx := context.Background()
	st, err := eventstore.New(ctx, bus.JS)
	if err != nil {
		b.Fatal(err)
	}
	versions := make([]uint64, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		agg := i % 100
		if _, err := st.Append(ctx, events.AggLoadBalancer, fmt.Sprintf("lb%d", agg), versions[agg], "", memberAdded(i)); err != nil {
			b.Fatal(err)
		}
		versions[agg]++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkAppendBatch10(b *testing.B) {
	bus := testkit.NATS(b)
	ctx := context.Background()
	st, err := eventstore.New(ctx, bus.JS)
	if err != nil {
		b.Fatal(err)
	}
	versions := make([]uint64, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		agg := i % 100
		evs := make([]events.Envelope, 10)
		for j := range evs {
			evs[j] = memberAdded(j)
		}
		if _, err := st.Append(ctx, events.AggLoadBalancer, fmt.Sprintf("lb%d", agg), versions[agg], "", evs...); err != nil {
			b.Fatal(err)
		}
		versions[agg] += 10
	}
	b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "events/s")
}

// fill1M stores 1M single-event commits over 10,000 aggregates, with the
// headers the store writes, plus one aggregate "target" of 50 events spread
// through the stream. The server does not fsync while filling (set-up only).
func fill1M(b *testing.B) (*testkit.Bus, *eventstore.Store) {
	b.Helper()
	bus := testkit.NATSWith(b, natsx.ServerConfig{UnsafeNoSync: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := eventstore.New(ctx, bus.JS)
	if err != nil {
		b.Fatal(err)
	}
	e := memberAdded(1)
	e.AggregateVersion = 1
	body, _ := events.MarshalCommit([]events.Envelope{e})
	const n = 1_000_000
	for i := 0; i < n; i++ {
		m := &nats.Msg{Subject: fmt.Sprintf("elb.evt.loadbalancer.bulk%d", i%10_000), Data: body, Header: nats.Header{}}
		m.Header.Set(eventstore.HeaderTypes, events.TypeMemberAdded)
		m.Header.Set(eventstore.HeaderVersion, "1")
		m.Header.Set(eventstore.HeaderProject, "proj")
		if _, err := bus.JS.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
		if i%2000 == 1999 {
			<-bus.JS.PublishAsyncComplete()
		}
		if i%(n/50) == n/100 {
			<-bus.JS.PublishAsyncComplete()
			v := uint64(i / (n / 50))
			if _, err := st.Append(ctx, events.AggLoadBalancer, "target", v, "", memberAdded(i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	<-bus.JS.PublishAsyncComplete()
	return bus, st
}

func BenchmarkLoadAggregateIn1M(b *testing.B) {
	bus, _ := fill1M(b)
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			st, _ := eventstore.New(ctx, bus.JS) // empty cache every time
			evs, _, err := st.Load(ctx, events.AggLoadBalancer, "target")
			if err != nil || len(evs) != 50 {
				b.Fatalf("loaded %d events, err %v", len(evs), err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		st, _ := eventstore.New(ctx, bus.JS)
		if _, _, err := st.Load(ctx, events.AggLoadBalancer, "target"); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, _, err := st.Load(ctx, events.AggLoadBalancer, "target"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkReplay1M(b *testing.B) {
	bus, st := fill1M(b)
	ctx := context.Background()
	stream, err := bus.JS.Stream(ctx, events.EventStream)
	if err != nil {
		b.Fatal(err)
	}
	info, _ := stream.Info(ctx)
	last := info.State.LastSeq
	b.Run("raw-ordered-consumer", func(b *testing.B) {
		var n int
		for i := 0; i < b.N; i++ {
			cons, _ := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
			it, _ := cons.Messages(jetstream.PullMaxMessages(4096))
			for {
				m, err := it.Next()
				if err != nil {
					b.Fatal(err)
				}
				meta, _ := m.Metadata()
				n++
				if meta.Sequence.Stream >= last {
					break
				}
			}
			it.Stop()
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("store-replay-raw", func(b *testing.B) {
		var n int
		for i := 0; i < b.N; i++ {
			if err := st.ReplayRaw(ctx, eventstore.Filter{}, func(eventstore.RawEvent) error { n++; return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("store-replay-decoded-envelopes", func(b *testing.B) {
		var n int
		for i := 0; i < b.N; i++ {
			if err := st.Replay(ctx, eventstore.Filter{}, func(events.Envelope) error { n++; return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	})
}
