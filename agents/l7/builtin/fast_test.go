package builtin

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elbcloud/elb/agents/l7"
	"github.com/elbcloud/elb/agents/l7/l7test"
)

// edgeBackend answers the paths the fast-path tests use.
func edgeBackend(t *testing.T) (string, int) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Method", r.Method)
			_, _ = w.Write(b)
		case "/chunked":
			for i := 0; i < 3; i++ {
				_, _ = io.WriteString(w, "part"+strconv.Itoa(i)+";")
				w.(http.Flusher).Flush()
			}
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("x", 1<<20)))
		case "/headers":
			_, _ = io.WriteString(w, r.Header.Get("Connection")+"|"+r.Header.Get("Keep-Alive")+"|"+r.Header.Get("X-Forwarded-For")+"|"+r.Host)
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(srv.Close)
	a := srv.Listener.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

// closeBackend answers with a close-delimited body (no length, no chunks).
func closeBackend(t *testing.T) (string, int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close body")
			}()
		}
	}()
	a := ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func startDriver(t *testing.T, host string, port int) string {
	d := New(Options{Logger: l7test.QuietLogger()})
	t.Cleanup(func() { d.Close() })
	bind, _ := l7test.FreeBind(t)
	err := d.Apply(context.Background(), l7.Desired{Listeners: []l7.Listener{{ID: "l1", Bind: bind, Algorithm: l7.AlgRoundRobin,
		Members:        []l7.Member{{ID: "m1", Address: host, Port: port, Weight: 1}},
		ConnectTimeout: time.Second, MemberTimeout: 5 * time.Second, ClientTimeout: 5 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	return bind
}

func rawExchange(t *testing.T, bind, request string) string {
	t.Helper()
	c, err := net.Dial("tcp", bind)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestFastPathRelaysBodiesAndFraming(t *testing.T) {
	host, port := edgeBackend(t)
	bind := startDriver(t, host, port)
	c := l7test.Client()
	defer c.CloseIdleConnections()
	base := "http://" + bind

	resp, err := c.Post(base+"/echo", "text/plain", strings.NewReader("hello body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello body" || resp.Header.Get("X-Method") != "POST" {
		t.Fatalf("echo: %q %v", b, resp.Header)
	}
	if code, body, _, err := l7test.Get(c, base+"/chunked"); err != nil || code != 200 || body != "part0;part1;part2;" {
		t.Fatalf("chunked: %d %q %v", code, body, err)
	}
	if code, body, _, err := l7test.Get(c, base+"/big"); err != nil || code != 200 || len(body) != 1<<20 {
		t.Fatalf("big: %d %d %v", code, len(body), err)
	}
	req, _ := http.NewRequest(http.MethodHead, base+"/echo", nil)
	resp, err = c.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Method") != "HEAD" {
		t.Fatalf("head: %v %+v", err, resp)
	}
	resp.Body.Close()
	// The connection still works after a HEAD (no body was expected).
	if code, body, _, err := l7test.Get(c, base+"/"); err != nil || code != 200 || body != "ok" {
		t.Fatalf("after head: %d %q %v", code, body, err)
	}
	// Hop-by-hop headers are dropped, XFF appended, Host kept.
	code, body, _, err := l7test.Get(c, base+"/headers", "Keep-Alive", "timeout=5", "X-Forwarded-For", "192.0.2.1")
	if err != nil || code != 200 || body != "||192.0.2.1, 127.0.0.1|"+bind {
		t.Fatalf("headers: %d %q %v", code, body, err)
	}
}

func TestFastPathHandsUnusualRequestsToNetHTTP(t *testing.T) {
	host, port := edgeBackend(t)
	bind := startDriver(t, host, port)
	// HTTP/1.0 and a chunked request body both take the net/http path.
	if out := rawExchange(t, bind, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.0 200") || !strings.HasSuffix(out, "ok") {
		t.Fatalf("http/1.0: %q", out)
	}
	out := rawExchange(t, bind, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.HasSuffix(out, "hello") {
		t.Fatalf("chunked request: %q", out)
	}
	// A keep-alive connection: a fast request first, then one that falls back.
	out = rawExchange(t, bind, "GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	if strings.Count(out, "HTTP/1.1 200") != 2 || !strings.HasSuffix(out, "abc") {
		t.Fatalf("pipelined: %q", out)
	}
	if out := rawExchange(t, bind, "NONSENSE\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.1 400") {
		t.Fatalf("garbage: %q", out)
	}
}

func TestFastPathRelaysCloseDelimitedResponses(t *testing.T) {
	host, port := closeBackend(t)
	bind := startDriver(t, host, port)
	out := rawExchange(t, bind, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.Contains(out, "Connection: close") || !strings.HasSuffix(out, "until-close body") {
		t.Fatalf("close-delimited: %q", out)
	}
}

// rudeBackend reads a request head and closes the connection unanswered.
func rudeBackend(t *testing.T) (string, int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				c.Close()
			}()
		}
	}()
	a := ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func TestFastPathAnswers502WhenAMemberHangsUp(t *testing.T) {
	host, port := rudeBackend(t)
	bind := startDriver(t, host, port)
	for _, req := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
	} {
		if out := rawExchange(t, bind, req); !strings.HasPrefix(out, "HTTP/1.1 502") {
			t.Fatalf("%q: got %q", req, out)
		}
	}
}
