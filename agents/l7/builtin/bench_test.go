package builtin

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/elbcloud/elb/agents/l7"
	"github.com/elbcloud/elb/agents/l7/l7test"
)

// BenchmarkProxyRoundTrip measures one proxied request over keep-alive
// connections (client, proxy and backend share the machine).
func BenchmarkProxyRoundTrip(b *testing.B) {
	b.Run("fast path", func(b *testing.B) { benchProxy(b, Options{}) })
	b.Run("net/http path", func(b *testing.B) { benchProxy(b, Options{NetHTTPOnly: true}) })
}

func benchProxy(b *testing.B, opts Options) {
	opts.Logger = l7test.QuietLogger()
	d := New(opts)
	defer d.Close()
	var ms []l7.Member
	for _, name := range []string{"m1", "m2", "m3"} {
		be := l7test.StartBackend(b, name)
		ms = append(ms, l7.Member{ID: name, Address: be.Host, Port: be.Port, Weight: 1})
	}
	bind, _ := l7test.FreeBind(b)
	if err := d.Apply(context.Background(), l7.Desired{Listeners: []l7.Listener{{ID: "l1", Bind: bind, Algorithm: l7.AlgRoundRobin, Members: ms,
		ConnectTimeout: time.Second, MemberTimeout: 5 * time.Second, ClientTimeout: 10 * time.Second}}}); err != nil {
		b.Fatal(err)
	}
	url := "http://" + bind + "/"
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
