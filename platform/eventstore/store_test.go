package eventstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/nats-io/nats.go/jetstream"
)

func newStore(t *testing.T) (*eventstore.Store, *testkit.Bus) {
	t.Helper()
	bus := testkit.NATS(t)
	st, err := eventstore.New(testkit.Context(t, 10*time.Second), bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	return st, bus
}

func memberAdded(i int) events.Envelope {
	return events.MustNew(events.AggLoadBalancer, "lb1", &events.MemberAdded{
		MemberID: fmt.Sprintf("m%d", i),
		Spec:     events.MemberSpec{PoolID: "p1", Address: "127.0.0.1", ProtocolPort: 8000 + i, Weight: 1, AdminStateUp: true},
	}, events.Meta{Actor: "test", ProjectID: "proj"})
}

func TestAppendThenLoadReturnsEventsWithVersions(t *testing.T) {
	st, _ := newStore(t)
	ctx := testkit.Context(t, 10*time.Second)
	r, err := st.Append(ctx, events.AggLoadBalancer, "lb1", 0, "cmd-1", memberAdded(1), memberAdded(2))
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 2 || r.Duplicate {
		t.Fatalf("result = %+v, want version 2", r)
	}
	if _, err := st.Append(ctx, events.AggLoadBalancer, "lb1", 2, "cmd-2", memberAdded(3)); err != nil {
		t.Fatal(err)
	}
	evs, v, err := st.Load(ctx, events.AggLoadBalancer, "lb1")
	if err != nil {
		t.Fatal(err)
	}
	if v != 3 || len(evs) != 3 {
		t.Fatalf("loaded %d events at version %d, want 3 at 3", len(evs), v)
	}
	for i, e := range evs {
		if e.AggregateVersion != uint64(i+1) {
			t.Errorf("event %d has version %d", i, e.AggregateVersion)
		}
		m, ok := e.Data.(*events.MemberAdded)
		if !ok || m.MemberID != fmt.Sprintf("m%d", i+1) {
			t.Errorf("event %d payload = %#v", i, e.Data)
		}
	}
}

func TestLoadOfUnknownAggregateIsEmpty(t *testing.T) {
	st, _ := newStore(t)
	evs, v, err := st.Load(testkit.Context(t, 5*time.Second), events.AggLoadBalancer, "nope")
	if err != nil || v != 0 || len(evs) != 0 {
		t.Fatalf("got %d events, version %d, err %v", len(evs), v, err)
	}
}

func TestConcurrentAppendsAtSameVersionExactlyOneWins(t *testing.T) {
	st, bus := newStore(t)
	ctx := testkit.Context(t, 30*time.Second)
	// Replicas: every goroutine gets its own store, as separate services would.
	var wins, conflicts, other atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 50 {
		s := st
		if i%2 == 1 {
			var err error
			if s, err = eventstore.New(ctx, bus.JS); err != nil {
				t.Fatal(err)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Append(ctx, events.AggLoadBalancer, "lb1", 0, fmt.Sprintf("cmd-%d", i), memberAdded(i))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, eventstore.ErrConcurrency):
				conflicts.Add(1)
			default:
				other.Add(1)
				t.Errorf("append %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 49 || other.Load() != 0 {
		t.Fatalf("wins=%d conflicts=%d other=%d, want 1/49/0", wins.Load(), conflicts.Load(), other.Load())
	}
	evs, v, err := st.Load(ctx, events.AggLoadBalancer, "lb1")
	if err != nil || v != 1 || len(evs) != 1 {
		t.Fatalf("history: %d events at version %d, err %v", len(evs), v, err)
	}
}

func TestRetriedAppendIsStoredOnce(t *testing.T) {
	st, bus := newStore(t)
	ctx := testkit.Context(t, 10*time.Second)
	first, err := st.Append(ctx, events.AggLoadBalancer, "lb1", 0, "cmd-A", memberAdded(1))
	if err != nil {
		t.Fatal(err)
	}
	// Immediate retry: the head now carries cmd-A.
	again, err := st.Append(ctx, events.AggLoadBalancer, "lb1", 0, "cmd-A", memberAdded(1))
	if err != nil || !again.Duplicate || again.Sequence != first.Sequence || again.Version != 1 {
		t.Fatalf("retry = %+v, %v; want duplicate of %+v", again, err, first)
	}
	// Someone else appends; then cmd-A is retried with its stale version,
	// from a replica with a cold cache.
	if _, err := st.Append(ctx, events.AggLoadBalancer, "lb1", 1, "cmd-B", memberAdded(2)); err != nil {
		t.Fatal(err)
	}
	cold, err := eventstore.New(ctx, bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := cold.Append(ctx, events.AggLoadBalancer, "lb1", 0, "cmd-A", memberAdded(1))
	if err != nil || !stale.Duplicate || stale.Sequence != first.Sequence {
		t.Fatalf("stale retry = %+v, %v; want duplicate of %+v", stale, err, first)
	}
	// A different command at the stale version is a real conflict.
	if _, err := cold.Append(ctx, events.AggLoadBalancer, "lb1", 0, "cmd-C", memberAdded(3)); !errors.Is(err, eventstore.ErrConcurrency) {
		t.Fatalf("stale new command: err = %v, want ErrConcurrency", err)
	}
	evs, _, _ := st.Load(ctx, events.AggLoadBalancer, "lb1")
	if len(evs) != 2 {
		t.Fatalf("stored %d events, want 2", len(evs))
	}
}

func TestAppendRejectsInvalidInput(t *testing.T) {
	st, _ := newStore(t)
	ctx := testkit.Context(t, 5*time.Second)
	bad := memberAdded(1)
	bad.Type = "NoSuchEvent"
	cases := map[string]func() error{
		"no events":     func() error { _, err := st.Append(ctx, "loadbalancer", "x", 0, ""); return err },
		"dotted id":     func() error { _, err := st.Append(ctx, "loadbalancer", "a.b", 0, "", memberAdded(1)); return err },
		"wildcard type": func() error { _, err := st.Append(ctx, "*", "x", 0, "", memberAdded(1)); return err },
		"unknown type":  func() error { _, err := st.Append(ctx, "loadbalancer", "x", 0, "", bad); return err },
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("%s: err = %v, want ErrInvalidAppend", name, err)
		}
	}
}

func TestLoadSeesAppendsFromOtherReplicas(t *testing.T) {
	st, bus := newStore(t)
	ctx := testkit.Context(t, 10*time.Second)
	other, err := eventstore.New(ctx, bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		s := st
		if i%2 == 1 {
			s = other
		}
		_, v, err := s.Load(ctx, events.AggLoadBalancer, "lb1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, events.AggLoadBalancer, "lb1", v, "", memberAdded(i)); err != nil {
			t.Fatalf("append %d at %d: %v", i, v, err)
		}
	}
	for _, s := range []*eventstore.Store{st, other} {
		evs, v, err := s.Load(ctx, events.AggLoadBalancer, "lb1")
		if err != nil || v != 5 || len(evs) != 5 {
			t.Fatalf("load: %d events v%d err %v", len(evs), v, err)
		}
	}
}

func TestReplayOf100kEventsIsCompleteAndOrdered(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	st, bus := newStore(t)
	ctx := testkit.Context(t, 120*time.Second)
	const n = 100_000
	appendBulk(t, ctx, bus.JS, n)
	var got int
	var lastSeq uint64
	lastVersion := map[string]uint64{}
	err := st.Replay(ctx, eventstore.Filter{}, func(e events.Envelope) error {
		if e.Sequence < lastSeq {
			return fmt.Errorf("sequence %d after %d", e.Sequence, lastSeq)
		}
		if e.AggregateVersion != lastVersion[e.AggregateID]+1 {
			return fmt.Errorf("%s version %d after %d", e.AggregateID, e.AggregateVersion, lastVersion[e.AggregateID])
		}
		lastVersion[e.AggregateID] = e.AggregateVersion
		lastSeq = e.Sequence
		got++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("replayed %d events, want %d", got, n)
	}
	// Sequence range and aggregate filters.
	got = 0
	if err := st.Replay(ctx, eventstore.Filter{FromSeq: 101, ToSeq: 200}, func(events.Envelope) error { got++; return nil }); err != nil || got != 1000 {
		t.Fatalf("range replay: %d, %v", got, err)
	}
	got = 0
	if err := st.Replay(ctx, eventstore.Filter{AggregateType: events.AggLoadBalancer, AggregateID: "lb-7"}, func(e events.Envelope) error {
		if e.AggregateID != "lb-7" {
			return fmt.Errorf("got %s", e.AggregateID)
		}
		got++
		return nil
	}); err != nil || got != n/1000 {
		t.Fatalf("aggregate replay: %d, %v", got, err)
	}
}

// appendBulk stores n events over 1000 aggregates, ten events per commit,
// with async publishes. (Every commit is fsynced before its ack, so commits,
// not events, bound the rate.)
func appendBulk(t testing.TB, ctx context.Context, js jetstream.JetStream, n int) {
	t.Helper()
	const perCommit = 10
	versions := map[int]uint64{}
	for c := 0; c*perCommit < n; c++ {
		agg := c % 1000
		evs := make([]events.Envelope, 0, perCommit)
		for j := 0; j < perCommit && c*perCommit+j < n; j++ {
			versions[agg]++
			e := memberAdded(c*perCommit + j)
			e.AggregateID = fmt.Sprintf("lb-%d", agg)
			e.AggregateVersion = versions[agg]
			evs = append(evs, e)
		}
		body, err := events.MarshalCommit(evs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishAsync(events.EventSubject(events.AggLoadBalancer, fmt.Sprintf("lb-%d", agg)), body); err != nil {
			t.Fatal(err)
		}
		if c%1000 == 999 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
}

func TestReplayRejectsBadFilters(t *testing.T) {
	st, _ := newStore(t)
	ctx := testkit.Context(t, 5*time.Second)
	for name, f := range map[string]eventstore.Filter{
		"id without type": {AggregateID: "x"},
		"inverted range":  {FromSeq: 10, ToSeq: 5},
		"unknown type":    {Types: []string{"Nope"}},
		"inverted time":   {Since: time.Now(), Until: time.Now().Add(-time.Hour)},
	} {
		if err := st.Replay(ctx, f, func(events.Envelope) error { return nil }); !errors.Is(err, eventstore.ErrInvalidFilter) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// The crash test runs a child process (this test binary) that embeds NATS and
// appends as fast as it can, printing every acknowledged sequence. The parent
// kills it with SIGKILL, restarts the server on the same directory and checks
// that every acknowledged event is there.
func TestAckedAppendsSurviveKill9(t *testing.T) {
	if os.Getenv("ELB_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAckedAppendsSurviveKill9$")
	cmd.Env = append(os.Environ(), "ELB_CRASH_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	const want = 300
	for sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "ACK "); ok {
			acked[id] = true
			if len(acked) >= want {
				break
			}
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if len(acked) < want {
		t.Fatalf("child acknowledged only %d appends", len(acked))
	}

	srv, err := natsx.StartServer(natsx.ServerConfig{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("check")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := testkit.Context(t, 30*time.Second)
	st, err := eventstore.New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	if err := st.Replay(ctx, eventstore.Filter{}, func(e events.Envelope) error { found[e.ID] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for id := range acked {
		if !found[id] {
			t.Errorf("acked event %s lost after kill -9", id)
		}
	}
	t.Logf("%d acked events, %d in the store after restart", len(acked), len(found))
}

func crashChild() {
	dir := os.Getenv("ELB_CRASH_CHILD")
	srv, err := natsx.StartServer(natsx.ServerConfig{StoreDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	nc, err := srv.Connect("child")
	if err != nil {
		os.Exit(2)
	}
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := natsx.EnsureTopology(ctx, js, natsx.Topology{}); err != nil {
		os.Exit(2)
	}
	st, err := eventstore.New(ctx, js)
	if err != nil {
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		e := memberAdded(i)
		if _, err := st.Append(ctx, events.AggLoadBalancer, "lb-crash", uint64(i), "", e); err != nil {
			fmt.Fprintln(os.Stderr, "append:", err)
			os.Exit(2)
		}
		fmt.Fprintln(w, "ACK "+e.ID)
		_ = w.Flush()
	}
}

func TestReplayWithAFilterThatMatchesNothingReturns(t *testing.T) {
	st, _ := newStore(t)
	ctx := testkit.Context(t, 10*time.Second)
	if _, err := st.Append(ctx, events.AggLoadBalancer, "lb1", 0, "", memberAdded(1)); err != nil {
		t.Fatal(err)
	}
	for _, f := range []eventstore.Filter{
		{AggregateType: events.AggVIPPool},
		{AggregateType: events.AggLoadBalancer, AggregateID: "other"},
		{Since: time.Now().Add(time.Hour)},
	} {
		if err := st.Replay(ctx, f, func(events.Envelope) error { return errors.New("nothing should match") }); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
}
