// Package l7test is the behaviour suite every L7 driver passes: traffic
// spread, weights, stickiness, allowlists, health-driven rotation with
// retries, config changes under load, metrics, and a bus outage with the
// agent runtime. Everything runs on loopback.
package l7test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Backend is a loopback HTTP server that counts requests.
type Backend struct {
	Name  string
	Host  string
	Port  int
	count atomic.Int64
	srv   *http.Server
	ln    net.Listener

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	dead  bool
}

// StartBackend starts a backend answering "<name>" with 200.
func StartBackend(t testing.TB, name string) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Backend{Name: name, ln: ln, conns: map[net.Conn]struct{}{}}
	addr := ln.Addr().(*net.TCPAddr)
	b.Host, b.Port = addr.IP.String(), addr.Port
	b.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.count.Add(1)
			switch r.URL.Path {
			case "/echo": // read all, then answer, as most applications do
				body, _ := io.ReadAll(r.Body)
				_, _ = w.Write(body)
				return
			case "/slow":
				time.Sleep(500 * time.Millisecond)
				_, _ = io.WriteString(w, "slow")
				return
			case "/big":
				_, _ = w.Write(make([]byte, 2<<20))
				return
			}
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Backend", name)
			w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
			_, _ = io.WriteString(w, name)
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			b.mu.Lock()
			defer b.mu.Unlock()
			switch s {
			case http.StateNew:
				if b.dead {
					c.Close()
					return
				}
				b.conns[c] = struct{}{}
			case http.StateClosed, http.StateHijacked:
				delete(b.conns, c)
			}
		},
	}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(b.Kill)
	return b
}

// Count is the number of requests served.
func (b *Backend) Count() int64 { return b.count.Load() }

// Kill simulates the process dying: the port refuses connections and every
// open connection is closed.
func (b *Backend) Kill() {
	b.mu.Lock()
	b.dead = true
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	_ = b.ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = b.srv.Shutdown(ctx)
}

// FreeBind returns a free 127.0.0.1 host:port for a listener.
func FreeBind(t testing.TB) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := ln.Addr().(*net.TCPAddr).Port
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), p
}

// Client returns a keep-alive HTTP client for tests.
func Client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16, Proxy: nil}}
}

// Get requests url and returns the status and body.
func Get(c *http.Client, url string, hdr ...string) (int, string, http.Header, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

// Load sends requests from a few goroutines until Stop, bounded in count
// and time.
type Load struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
	mu         sync.Mutex
	firstErr   string
}

// StartLoad starts workers goroutines against url; each sends at most
// maxPerWorker requests and stops after maxDuration.
func StartLoad(url string, workers, maxPerWorker int, maxDuration time.Duration) *Load {
	l := &Load{stop: make(chan struct{})}
	deadline := time.Now().Add(maxDuration)
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := Client()
			defer c.CloseIdleConnections()
			for i := 0; i < maxPerWorker && time.Now().Before(deadline); i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				code, _, _, err := Get(c, url)
				if err != nil || code != http.StatusOK {
					l.failed.Add(1)
					l.mu.Lock()
					if l.firstErr == "" {
						l.firstErr = fmt.Sprintf("status %d err %v", code, err)
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
				time.Sleep(time.Millisecond) // bounded rate
			}
		}()
	}
	return l
}

// Stop ends the load and returns successes, failures and the first failure.
func (l *Load) Stop() (ok, failed int64, first string) {
	close(l.stop)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.firstErr
}

// Eventually polls fn until true or fails after timeout.
func Eventually(t testing.TB, timeout time.Duration, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// QuietLogger discards logs (tests that want them pass their own).
func QuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
