package provisioner_test

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/provisioner"
	"github.com/elbcloud/elb/services/provisioner/compute/local"
	"github.com/elbcloud/elb/services/provisioner/domain"
	"github.com/elbcloud/elb/services/provisioner/internal/testagent"
	"github.com/nats-io/nats.go"
)

// benchEnv runs the allocator and the provisioner with the local driver;
// every node is a real process (the test binary as agent) that connects to
// NATS with its own credentials and counts as ready at its first heartbeat,
// as in `elb up`. The LVS node is answered in-process.
func benchEnv(b *testing.B, warm int) (*env, func(id string) <-chan time.Time) {
	e := newEnv(b, true)
	exe, _ := os.Executable()
	d := e.localDriver(testagent.Argv(exe), e.url, local.ReadyHeartbeat, b.TempDir())
	e.lvsAgent()
	e.allocator()
	e.provisioner(d, func(c *provisioner.Config) { c.WarmPool = warm; c.Tick = 200 * time.Millisecond })
	var mu sync.Mutex
	waiters := map[string]chan time.Time{}
	_, err := e.bus.Conn.Subscribe(events.EventSubjectPrefix+events.AggLoadBalancer+".>", func(m *nats.Msg) {
		if !strings.Contains(m.Header.Get(eventstore.HeaderTypes), events.TypeELBActive) && !strings.Contains(m.Header.Get(eventstore.HeaderTypes), events.TypeELBFailed) {
			return
		}
		now := time.Now()
		id := strings.TrimPrefix(m.Subject, events.EventSubjectPrefix+events.AggLoadBalancer+".")
		mu.Lock()
		ch := waiters[id]
		delete(waiters, id)
		mu.Unlock()
		if ch != nil {
			ch <- now
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	wait := func(id string) <-chan time.Time {
		ch := make(chan time.Time, 1)
		mu.Lock()
		waiters[id] = ch
		mu.Unlock()
		return ch
	}
	return e, wait
}

func warmReady(e *env, want int) bool {
	evs, _, _ := e.store.Load(e.ctx, events.AggNode, domain.WarmPoolID)
	p := domain.NewWarmPool()
	for _, ev := range evs {
		p.Apply(ev)
	}
	n := 0
	for _, w := range p.Nodes() {
		if w.Status == domain.NodeReady && w.ClaimedBy == "" {
			n++
		}
	}
	return n >= want
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkCreateToActive measures one create at a time, from the append of
// ELBRequested (with an HTTP listener, pool, member and monitor) to the
// commit of ELBActive. The load balancer is deleted afterwards (untimed).
func BenchmarkCreateToActive(b *testing.B) {
	for _, warm := range []int{0, 2} {
		b.Run(fmt.Sprintf("warm=%d", warm), func(b *testing.B) {
			e, wait := benchEnv(b, warm)
			var lat []time.Duration
			b.ResetTimer()
			for i := range b.N {
				if warm > 0 {
					b.StopTimer()
					for !warmReady(e, warm) {
						time.Sleep(10 * time.Millisecond)
					}
					b.StartTimer()
				}
				id := fmt.Sprintf("bench-%d-%d", warm, i)
				done := wait(id)
				start := time.Now()
				e.appendLB(id, append([]any{request(events.LoadBalancerSpec{}, time.Minute)}, httpTree(id, 10000+i)...)...)
				end := <-done
				lat = append(lat, end.Sub(start))
				b.StopTimer()
				e.waitStatus(id, 10*time.Second, "ACTIVE")
				e.appendLB(id, &events.ELBDeleteRequested{Deadline: time.Now().Add(time.Minute)})
				e.waitStatus(id, time.Minute, "DELETED")
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99_ms")
		})
	}
}

// BenchmarkSustainedCreates fires b.N creates with 10 in flight and reports
// completed creates per second.
func BenchmarkSustainedCreates(b *testing.B) {
	e, wait := benchEnv(b, 0)
	sem := make(chan struct{}, 10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id := fmt.Sprintf("sus-%d", i)
			done := wait(id)
			t0 := time.Now()
			e.appendLB(id, append([]any{request(events.LoadBalancerSpec{}, time.Minute)}, httpTree(id, 20000+i)...)...)
			end := <-done
			mu.Lock()
			lat = append(lat, end.Sub(t0))
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "creates/s")
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99_ms")
}
