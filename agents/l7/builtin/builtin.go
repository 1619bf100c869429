// Package builtin is the L7 driver with a Go reverse proxy, for the
// single-machine mode where nginx is absent. Config swaps are atomic pointer
// stores: in-flight requests finish on the state they started with; removed
// listeners drain gracefully (http.Server.Shutdown).
package builtin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/elbcloud/elb/agents/l7"
)

// ErrNoMember is the transport error when no member can take a request.
var ErrNoMember = errors.New("no member available")

// Options configure the driver.
type Options struct {
	// MaxIdleConnsPerHost bounds pooled keep-alive connections per member
	// (default 512).
	MaxIdleConnsPerHost int
	// NetHTTPOnly serves every request through net/http and
	// httputil.ReverseProxy instead of the raw HTTP/1.1 fast path.
	NetHTTPOnly bool
	Logger      *slog.Logger
}

// Driver is the builtin L7 driver.
type Driver struct {
	opts Options
	log  *slog.Logger
	acc  *l7.Accumulator
	bufs *bufferPool

	mu        sync.Mutex
	listeners map[string]*listener
	closed    bool
	draining  sync.WaitGroup
	upstreams sync.Map // member host -> *connPool (fast path)
}

// New returns an idle driver; listeners open on Apply.
func New(opts Options) *Driver {
	if opts.MaxIdleConnsPerHost <= 0 {
		opts.MaxIdleConnsPerHost = 512
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Driver{opts: opts, log: opts.Logger.With("driver", "builtin"), acc: l7.NewAccumulator(), bufs: newBufferPool(), listeners: map[string]*listener{}}
}

// Name implements l7.Driver.
func (d *Driver) Name() string { return "builtin" }

type listener struct {
	id    string
	bind  string
	ln    net.Listener
	srv   *http.Server
	state atomic.Pointer[lstate]
	conns atomic.Int64 // open client connections
	reqs  atomic.Int64 // in-flight requests
	d     *Driver

	fallback *chanListener // connections the fast path hands to srv
	connsMu  sync.Mutex
	fconns   map[*fconn]struct{}
	fastWG   sync.WaitGroup
}

func (ln *listener) trackConn(fc *fconn, add bool) {
	ln.connsMu.Lock()
	defer ln.connsMu.Unlock()
	if add {
		ln.fconns[fc] = struct{}{}
		ln.conns.Add(1)
		ln.fastWG.Add(1)
		return
	}
	delete(ln.fconns, fc)
	ln.conns.Add(-1)
	ln.fastWG.Done()
}

func (ln *listener) acceptLoop(nl net.Listener) {
	for {
		c, err := nl.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // EMFILE and friends
			continue
		}
		go ln.serveFast(c)
	}
}

// lstate is one listener's immutable config; a swap replaces it whole.
type lstate struct {
	cfg       l7.Listener
	port      string
	pool      *pool
	allowed   []netip.Prefix
	transport *http.Transport
	proxy     *httputil.ReverseProxy
}

// Apply implements l7.Driver.
func (d *Driver) Apply(_ context.Context, desired l7.Desired) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return l7.ErrDriverClosed
	}
	want := map[string]l7.Listener{}
	binds := map[string]bool{}
	for _, l := range desired.Listeners {
		if _, err := netip.ParseAddrPort(l.Bind); err != nil {
			return fmt.Errorf("%w: listener %s bind %q: %w", l7.ErrInvalidDesired, l.ID, l.Bind, err)
		}
		if binds[l.Bind] {
			return fmt.Errorf("%w: two listeners bind %s", l7.ErrInvalidDesired, l.Bind)
		}
		binds[l.Bind] = true
		want[l.ID] = l
	}
	// Remove first so that a port moving between listeners is free.
	for id, ln := range d.listeners {
		if l, ok := want[id]; ok && l.Bind == ln.bind {
			continue
		}
		delete(d.listeners, id)
		d.drain(ln)
	}
	var errs []error
	for _, l := range desired.Listeners {
		st, err := d.newState(l, d.listeners[l.ID])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ln, ok := d.listeners[l.ID]; ok {
			if old := ln.state.Load(); st != old {
				ln.state.Store(st)
			}
			continue
		}
		ln, err := d.listen(l, st)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.listeners[l.ID] = ln
	}
	// Idle connections to members no listener uses any more are closed;
	// requests in flight on them finish first.
	inUse := map[string]bool{}
	for _, ln := range d.listeners {
		for h := range ln.state.Load().pool.members() {
			inUse[h[strings.LastIndexByte(h, '@')+1:]] = true
		}
	}
	d.upstreams.Range(func(k, v any) bool {
		if !inUse[k.(string)] {
			d.upstreams.Delete(k)
			v.(*connPool).retire()
		}
		return true
	})
	return errors.Join(errs...)
}

// newState builds the listener state, reusing the current one when nothing
// changed and the transport and members when possible.
func (d *Driver) newState(l l7.Listener, cur *listener) (*lstate, error) {
	var old *lstate
	if cur != nil {
		old = cur.state.Load()
		if reflect.DeepEqual(old.cfg, l) {
			return old, nil
		}
	}
	st := &lstate{cfg: l}
	if _, port, err := net.SplitHostPort(l.Bind); err == nil {
		st.port = port
	}
	for _, c := range l.AllowedCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("%w: listener %s allowed cidr: %w", l7.ErrInvalidDesired, l.ID, err)
		}
		st.allowed = append(st.allowed, p.Masked())
	}
	for _, m := range l.Members {
		if _, err := netip.ParseAddr(m.Address); err != nil || m.Port < 1 || m.Port > 65535 {
			return nil, fmt.Errorf("%w: listener %s member %s address", l7.ErrInvalidDesired, l.ID, m.ID)
		}
	}
	var oldMembers map[string]*member
	if old != nil {
		oldMembers = old.pool.members()
		if old.cfg.ConnectTimeout == l.ConnectTimeout && old.cfg.MemberTimeout == l.MemberTimeout {
			st.transport = old.transport
		}
	}
	st.pool = newPool(l, oldMembers)
	if st.transport == nil {
		st.transport = &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: l.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          0,
			MaxIdleConnsPerHost:   d.opts.MaxIdleConnsPerHost,
			IdleConnTimeout:       60 * time.Second,
			ResponseHeaderTimeout: l.MemberTimeout,
			DisableCompression:    true,
			ForceAttemptHTTP2:     false,
			WriteBufferSize:       32 << 10,
			ReadBufferSize:        32 << 10,
		}
		if old != nil {
			// Idle connections of the replaced transport would linger until
			// their idle timeout; in-flight ones finish first.
			go func(t *http.Transport) {
				time.Sleep(l.MemberTimeout)
				t.CloseIdleConnections()
			}(old.transport)
		}
	}
	rt := &retryTransport{st: st, acc: d.acc, listener: l.ID}
	st.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "upstream" // replaced per attempt by retryTransport
			pr.Out.Host = pr.In.Host
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
			delete(pr.Out.Header, "X-Forwarded-Host")
			if !l.XForwardedProto {
				delete(pr.Out.Header, "X-Forwarded-Proto")
			}
			if l.XForwardedPort {
				if _, port, err := net.SplitHostPort(l.Bind); err == nil {
					pr.Out.Header.Set("X-Forwarded-Port", port)
				}
			}
		},
		Transport:    rt,
		BufferPool:   d.bufs,
		ErrorHandler: proxyError,
		ErrorLog:     log.New(io.Discard, "", 0),
	}
	return st, nil
}

func (d *Driver) listen(l l7.Listener, st *lstate) (*listener, error) {
	nl, err := net.Listen("tcp", l.Bind)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.ID, err)
	}
	ln := &listener{id: l.ID, bind: l.Bind, ln: nl, d: d, fconns: map[*fconn]struct{}{}, fallback: newChanListener(nl.Addr())}
	ln.state.Store(st)
	ln.srv = &http.Server{
		Handler:           ln,
		ReadHeaderTimeout: l.ClientTimeout,
		IdleTimeout:       l.ClientTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				ln.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				ln.conns.Add(-1)
			}
		},
	}
	serve := func(l net.Listener) {
		if err := ln.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			d.log.Error("listener stopped", "listener", ln.id, "err", err)
		}
	}
	if d.opts.NetHTTPOnly {
		go serve(nl)
	} else {
		go serve(ln.fallback)
		go ln.acceptLoop(nl)
	}
	d.log.Info("listener open", "listener", l.ID, "bind", l.Bind)
	return ln, nil
}

// drain closes the listening socket now and lets open requests finish within
// the listener's drain timeout. Lock must be held.
func (d *Driver) drain(ln *listener) {
	timeout := ln.state.Load().cfg.DrainTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	d.draining.Add(1)
	go func() {
		defer d.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_ = ln.ln.Close() // no new connections; the port is free now
		ln.connsMu.Lock()
		for fc := range ln.fconns {
			fc.closing.Store(true)
			if !fc.busy.Load() {
				_ = fc.c.SetReadDeadline(time.Now()) // idle: wake and close
			}
		}
		ln.connsMu.Unlock()
		if err := ln.srv.Shutdown(ctx); err != nil {
			_ = ln.srv.Close()
		}
		fastDone := make(chan struct{})
		go func() { ln.fastWG.Wait(); close(fastDone) }()
		select {
		case <-fastDone:
		case <-ctx.Done():
			ln.connsMu.Lock()
			for fc := range ln.fconns {
				_ = fc.c.Close()
			}
			ln.connsMu.Unlock()
			<-fastDone
		}
		d.log.Info("listener drained", "listener", ln.id)
	}()
}

// Stats implements l7.Driver.
func (d *Driver) Stats() l7.Snapshot {
	s := l7.Snapshot{Listeners: d.acc.Take(), NodeActiveConnections: -1}
	d.mu.Lock()
	defer d.mu.Unlock()
	total := 0
	for id, ln := range d.listeners {
		ls := s.Listeners[id]
		if ls == nil {
			ls = &l7.ListenerStats{ClientIPs: map[string]int{}, URLs: map[string]int{}}
			s.Listeners[id] = ls
		}
		ls.ActiveConnections = int(ln.conns.Load())
		total += ls.ActiveConnections
	}
	s.NodeActiveConnections = total
	return s
}

// Close drains every listener and waits.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for id, ln := range d.listeners {
		delete(d.listeners, id)
		d.drain(ln)
	}
	d.mu.Unlock()
	d.draining.Wait()
	d.upstreams.Range(func(_, v any) bool {
		v.(*connPool).closeAll()
		return true
	})
	return nil
}

// respWriter records status and bytes; pooled.
type respWriter struct {
	http.ResponseWriter
	status   int
	bytes    int64
	elbError bool // the load balancer, not a member, produced the response
}

var rwPool = sync.Pool{New: func() any { return new(respWriter) }}

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and friends.
func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func proxyError(rw http.ResponseWriter, _ *http.Request, err error) {
	if w, ok := rw.(*respWriter); ok {
		w.elbError = true
	}
	code := http.StatusBadGateway
	switch {
	case errors.Is(err, ErrNoMember):
		code = http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		code = http.StatusGatewayTimeout
	}
	rw.WriteHeader(code)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func clientIP(remote string) string {
	if i := strings.LastIndexByte(remote, ':'); i > 0 {
		remote = remote[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(remote, "["), "]")
}

// ServeHTTP is the hot path: one pooled writer, no per-request maps.
func (ln *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.ContentLength != 0 {
		// A member may answer while the request body still streams in.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	st := ln.state.Load()
	rw := rwPool.Get().(*respWriter)
	*rw = respWriter{ResponseWriter: w}
	ip := clientIP(r.RemoteAddr)
	spill := false
	inflight := ln.reqs.Add(1)
	switch {
	case len(st.allowed) > 0 && !allowed(st.allowed, ip):
		rw.elbError = true
		rw.WriteHeader(http.StatusForbidden)
	case st.cfg.ConnectionLimit > 0 && inflight > int64(st.cfg.ConnectionLimit):
		rw.elbError, spill = true, true
		rw.WriteHeader(http.StatusServiceUnavailable)
	case len(st.pool.primaries) == 0:
		rw.elbError = true
		rw.WriteHeader(http.StatusServiceUnavailable)
	default:
		st.proxy.ServeHTTP(rw, r)
	}
	ln.reqs.Add(-1)
	req := l7.Request{Listener: ln.id, ClientIP: ip, URL: r.URL.Path, Status: rw.status, Spillover: spill,
		Duration: time.Since(start), BytesIn: r.ContentLength, BytesOut: rw.bytes}
	if !rw.elbError {
		req.UpstreamStatus = rw.status
	}
	if req.BytesIn < 0 {
		req.BytesIn = 0
	}
	if len(req.URL) > 256 {
		req.URL = req.URL[:256]
	}
	ln.d.acc.Record(req)
	*rw = respWriter{}
	rwPool.Put(rw)
}

func allowed(ps []netip.Prefix, ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// retryTransport picks a member per attempt and retries connection errors on
// another member (at most 3 attempts), like nginx's proxy_next_upstream error.
type retryTransport struct {
	st       *lstate
	acc      *l7.Accumulator
	listener string
}

type noCloseBody struct{ io.ReadCloser }

func (noCloseBody) Close() error { return nil }

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var tr tried
	body := req.Body
	if body != nil && body != http.NoBody {
		// A failed dial writes nothing, so the body can go to the next
		// member; keep the transport from closing it in between.
		req.Body = noCloseBody{body}
		defer body.Close()
	}
	ip := clientIP(req.RemoteAddr)
	var lastErr error = ErrNoMember
	for attempt := 0; attempt < 3; attempt++ {
		cookies := ""
		if t.st.pool.needsCookies() {
			cookies = strings.Join(req.Header["Cookie"], "; ")
		}
		m, setCookie := t.st.pool.pick(cookies, ip, &tr)
		if m == nil {
			break
		}
		req.URL.Host = m.host
		m.active.Add(1)
		resp, err := t.st.transport.RoundTrip(req)
		if err == nil {
			if t.st.pool.alg == l7.AlgLeastConn {
				resp.Body = &countedBody{ReadCloser: resp.Body, m: m}
			} else {
				m.active.Add(-1)
			}
			if setCookie {
				resp.Header.Add("Set-Cookie", l7.InsertCookieName+"="+m.cookie+"; Path=/; HttpOnly")
			}
			return resp, nil
		}
		m.active.Add(-1)
		lastErr = err
		if isConnectError(err) {
			t.acc.AddConnectErrors(t.listener, 1)
			m.failedUntil.Store(time.Now().Add(passiveFailTimeout).UnixNano())
		} else if body != nil && body != http.NoBody || !idempotentMethod(req.Method) || req.Context().Err() != nil {
			// The member may have seen the request: do not repeat it.
			return nil, err
		}
		tr.add(m)
	}
	return nil, lastErr
}

func idempotentMethod(m string) bool { return idempotent([]byte(m)) }

// isConnectError reports errors that prove the request never reached the
// member: dial failures (refused, unreachable, dial timeout).
func isConnectError(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

type countedBody struct {
	io.ReadCloser
	m    *member
	done atomic.Bool
}

func (b *countedBody) Close() error {
	if b.done.CompareAndSwap(false, true) {
		b.m.active.Add(-1)
	}
	return b.ReadCloser.Close()
}

// bufferPool implements httputil.BufferPool with 32 KiB buffers.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(s []byte) { b.p.Put(&s) }
