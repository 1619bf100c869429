package builtin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elbcloud/elb/agents/l7"
)

// The fast path serves plain HTTP/1.1 requests (origin-form target, Host,
// no request Transfer-Encoding, no Upgrade, no Expect) on raw connections:
// it forwards the request head with the hop-by-hop headers removed and
// X-Forwarded-For appended, and the response with its own framing
// (Content-Length, chunked, or until close), over pooled keep-alive member
// connections. A connection whose next request is anything else is handed,
// with the bytes already read, to the listener's net/http server, which
// serves it through httputil.ReverseProxy for the rest of its life.

// maxHead bounds a request or response head.
const maxHead = 64 << 10

// maxFastBody is the largest request body the fast path forwards.
const maxFastBody = 64 << 10

var (
	errFallback  = errors.New("needs the net/http path")
	errBadHead   = errors.New("malformed http head")
	errHeadLarge = errors.New("http head too large")
)

// fconn is one client connection on the fast path.
type fconn struct {
	c       net.Conn
	busy    atomic.Bool // serving a request
	closing atomic.Bool // drain: close after the current response
}

// upConn is a pooled connection to a member.
type upConn struct {
	c     net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	idled time.Time
}

// connPool holds idle connections to one member (LIFO).
type connPool struct {
	mu     sync.Mutex
	idle   []*upConn
	max    int
	closed bool // the member left every pool: close returned connections
}

// upstreamIdleTimeout drops pooled connections before typical server
// keep-alive timeouts (60-75 s) close them under us.
const upstreamIdleTimeout = 45 * time.Second

func (p *connPool) get() *upConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		uc := p.idle[n-1]
		p.idle = p.idle[:n-1]
		if time.Since(uc.idled) < upstreamIdleTimeout {
			return uc
		}
		uc.c.Close()
	}
	return nil
}

func (p *connPool) put(uc *upConn) {
	uc.idled = time.Now()
	p.mu.Lock()
	if !p.closed && len(p.idle) < p.max {
		p.idle = append(p.idle, uc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	uc.c.Close()
}

func (p *connPool) retire() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.closeAll()
}

func (p *connPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, uc := range p.idle {
		uc.c.Close()
	}
	p.idle = nil
}

func (d *Driver) pool(host string) *connPool {
	if v, ok := d.upstreams.Load(host); ok {
		return v.(*connPool)
	}
	v, _ := d.upstreams.LoadOrStore(host, &connPool{max: d.opts.MaxIdleConnsPerHost})
	return v.(*connPool)
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}
)

// reqHead is a parsed request head; slices point into buf.
type reqHead struct {
	buf           []byte
	lines         [][2]int // header line spans in buf (without CRLF)
	method        []byte
	target        []byte
	requestLine   []byte
	contentLength int64
	host          bool
	closeConn     bool
	xff           []byte
	cookie        []byte
}

func (h *reqHead) reset() {
	h.buf = h.buf[:0]
	h.lines = h.lines[:0]
	h.method, h.target, h.requestLine, h.xff, h.cookie = nil, nil, nil, nil, nil
	h.contentLength, h.host, h.closeConn = 0, false, false
}

// readHead reads one request head into h. It returns errFallback for
// requests the fast path leaves to net/http (h.buf then holds the raw bytes).
func readHead(br *bufio.Reader, h *reqHead) error {
	h.reset()
	first := true
	fallback := false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return errHeadLarge
			}
			if len(h.buf) > 0 && errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		start := len(h.buf)
		h.buf = append(h.buf, line...)
		if len(h.buf) > maxHead {
			return errHeadLarge
		}
		end := len(h.buf) - 1
		if end > start && h.buf[end-1] == '\r' {
			end--
		}
		if first {
			if end == start {
				h.buf = h.buf[:0] // tolerate a leading empty line
				continue
			}
			first = false
			h.lines = append(h.lines, [2]int{start, end})
			continue
		}
		if end == start {
			break
		}
		h.lines = append(h.lines, [2]int{start, end})
	}
	// Slices into buf are taken only now that buf no longer grows.
	rl := h.buf[h.lines[0][0]:h.lines[0][1]]
	h.requestLine = rl
	sp1 := bytes.IndexByte(rl, ' ')
	sp2 := bytes.LastIndexByte(rl, ' ')
	if sp1 <= 0 || sp2 <= sp1 {
		return errBadHead
	}
	h.method, h.target = rl[:sp1], rl[sp1+1:sp2]
	if string(rl[sp2+1:]) != "HTTP/1.1" || len(h.target) == 0 || h.target[0] != '/' {
		fallback = true
	}
	for _, sp := range h.lines[1:] {
		line := h.buf[sp[0]:sp[1]]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errBadHead
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case equalFold(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (h.contentLength > 0 && n != h.contentLength) {
				return errBadHead
			}
			h.contentLength = n
		case equalFold(name, "host"):
			h.host = true
		case equalFold(name, "connection"):
			if containsFold(value, "upgrade") {
				fallback = true
			}
			if containsFold(value, "close") {
				h.closeConn = true
			}
		case equalFold(name, "transfer-encoding"), equalFold(name, "expect"), equalFold(name, "upgrade"):
			fallback = true
		case equalFold(name, "x-forwarded-for"):
			if len(h.xff) == 0 {
				h.xff = value
			} else {
				fallback = true // several XFF lines: let net/http merge them
			}
		case equalFold(name, "cookie"):
			if len(h.cookie) == 0 {
				h.cookie = value
			} else {
				fallback = true
			}
		}
	}
	if !h.host || h.contentLength > maxFastBody {
		// Large uploads go to net/http, which streams them full duplex
		// (the fast path sends the whole body before reading the answer).
		fallback = true
	}
	if fallback {
		return errFallback
	}
	return nil
}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func containsFold(b []byte, lower string) bool {
	for i := 0; i+len(lower) <= len(b); i++ {
		if equalFold(b[i:i+len(lower)], lower) {
			return true
		}
	}
	return false
}

// hopByHop reports request/response headers a proxy must not forward.
func hopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 7:
		return equalFold(name, "trailer") || equalFold(name, "upgrade")
	case 10:
		return equalFold(name, "connection") || equalFold(name, "keep-alive")
	case 16:
		return equalFold(name, "proxy-connection")
	case 17:
		return equalFold(name, "transfer-encoding")
	case 18:
		return equalFold(name, "proxy-authenticate")
	case 19:
		return equalFold(name, "proxy-authorization")
	}
	return false
}

// serveFast runs one client connection.
func (ln *listener) serveFast(c net.Conn) {
	fc := &fconn{c: c}
	ln.trackConn(fc, true)
	defer ln.trackConn(fc, false)
	br := readerPool.Get().(*bufio.Reader)
	bw := writerPool.Get().(*bufio.Writer)
	br.Reset(c)
	bw.Reset(c)
	handedOff := false
	defer func() {
		bw.Reset(nil)
		writerPool.Put(bw)
		if !handedOff { // a handed-off connection keeps reading from br
			br.Reset(nil)
			readerPool.Put(br)
			c.Close()
		}
	}()
	ip := clientIP(c.RemoteAddr().String())
	h := &reqHead{buf: make([]byte, 0, 1024)}
	for {
		st := ln.state.Load()
		if fc.closing.Load() {
			return
		}
		_ = c.SetDeadline(time.Now().Add(st.cfg.ClientTimeout))
		err := readHead(br, h)
		if errors.Is(err, errFallback) {
			// Replay what was read, then the rest of the connection.
			handedOff = true
			ln.fallback.push(&replayConn{Conn: c, r: io.MultiReader(bytes.NewReader(append([]byte(nil), h.buf...)), br)})
			return
		}
		if err != nil {
			if errors.Is(err, errBadHead) || errors.Is(err, errHeadLarge) {
				_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}
			return
		}
		fc.busy.Store(true)
		keep := ln.forward(st, h, ip, br, bw, c)
		fc.busy.Store(false)
		if !keep || h.closeConn {
			return
		}
	}
}

// forward serves one request and reports whether the client connection can
// carry another.
func (ln *listener) forward(st *lstate, h *reqHead, ip string, br *bufio.Reader, bw *bufio.Writer, c net.Conn) bool {
	start := time.Now()
	rec := l7.Request{Listener: ln.id, ClientIP: ip, BytesIn: int64(len(h.buf)) + h.contentLength}
	path := h.target
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	inflight := ln.reqs.Add(1)
	defer ln.reqs.Add(-1)
	keep := true
	local := func(code int) {
		rec.Status = code
		// The body was not read: discard a small one, else close.
		if h.contentLength > 0 {
			if h.contentLength > 1<<20 {
				keep = false
			} else if _, err := io.CopyN(io.Discard, br, h.contentLength); err != nil {
				keep = false
			}
		}
		conn := ""
		if !keep || h.closeConn {
			conn = "Connection: close\r\n"
		}
		text := http.StatusText(code)
		n, _ := fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s\r\n%s\n", code, text, len(text)+1, conn, text)
		rec.BytesOut = int64(n)
		if bw.Flush() != nil {
			keep = false
		}
	}
	switch {
	case len(st.allowed) > 0 && !allowed(st.allowed, ip):
		local(http.StatusForbidden)
	case st.cfg.ConnectionLimit > 0 && inflight > int64(st.cfg.ConnectionLimit):
		rec.Spillover = true
		local(http.StatusServiceUnavailable)
	case len(st.pool.primaries) == 0:
		local(http.StatusServiceUnavailable)
	default:
		keep = ln.proxy(st, h, ip, br, bw, c, &rec)
	}
	rec.Duration = time.Since(start)
	rec.URL = string(path[:min(len(path), 256)])
	ln.d.acc.Record(rec)
	return keep
}

// proxy forwards to a member with retries on connect errors.
func (ln *listener) proxy(st *lstate, h *reqHead, ip string, br *bufio.Reader, bw *bufio.Writer, c net.Conn, rec *l7.Request) bool {
	var tr tried
	cookies := ""
	if st.pool.needsCookies() {
		cookies = string(h.cookie)
	}
	stale := 0
	var lastErr error = ErrNoMember
	for attempt := 0; attempt < 3; {
		m, setCookie := st.pool.pick(cookies, ip, &tr)
		if m == nil {
			break
		}
		cp := ln.d.pool(m.host)
		uc := cp.get()
		reused := uc != nil
		if uc == nil {
			attempt++
			conn, err := net.DialTimeout("tcp", m.host, st.cfg.ConnectTimeout)
			if err != nil {
				lastErr = err
				rec.ConnectErrors++
				m.failedUntil.Store(time.Now().Add(passiveFailTimeout).UnixNano())
				tr.add(m)
				continue
			}
			uc = &upConn{c: conn, br: bufio.NewReaderSize(conn, 16<<10), bw: bufio.NewWriterSize(conn, 16<<10)}
		}
		m.active.Add(1)
		res, err := ln.exchange(st, h, ip, br, bw, c, uc, m, setCookie, rec)
		m.active.Add(-1)
		if err != nil {
			lastErr = err
		}
		switch res {
		case exOK:
			cp.put(uc)
			return true
		case exOKClose:
			uc.c.Close()
			return true
		case exOKCloseBoth:
			uc.c.Close()
			return false
		case exRetry:
			// Nothing of the response reached the client. Like nginx's
			// proxy_next_upstream error, an idempotent request without a
			// body goes to another member.
			uc.c.Close()
			if h.contentLength != 0 || !idempotent(h.method) {
				return ln.badGateway(bw, rec, err)
			}
			if reused && stale < 3 {
				// Most likely a pooled connection the member had closed;
				// its siblings are probably stale too.
				stale++
				cp.closeAll()
				continue
			}
			if reused {
				attempt++
			}
			tr.add(m)
			continue
		default: // the client went away or got a partial response
			uc.c.Close()
			return false
		}
	}
	return ln.badGateway(bw, rec, lastErr)
}

func idempotent(method []byte) bool {
	switch string(method) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

func (ln *listener) badGateway(bw *bufio.Writer, rec *l7.Request, err error) bool {
	code := http.StatusBadGateway
	if errors.Is(err, ErrNoMember) {
		code = http.StatusServiceUnavailable
	} else if isTimeout(err) {
		code = http.StatusGatewayTimeout
	}
	rec.Status = code
	text := http.StatusText(code)
	n, _ := fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n", code, text, len(text)+1, text)
	rec.BytesOut = int64(n)
	_ = bw.Flush()
	return false
}

type exResult int

const (
	exOK           exResult = iota // response relayed, member connection reusable
	exOKClose                      // response relayed, member connection done
	exOKCloseBoth                  // response relayed until close: client connection done too
	exRetry                        // failed before any response byte
	exClientGone                   // the client went away
	exFailedMidway                 // failed after part of the response was sent
)

// exchange writes the request to the member and relays the response.
func (ln *listener) exchange(st *lstate, h *reqHead, ip string, br *bufio.Reader, bw *bufio.Writer, c net.Conn, uc *upConn, m *member, setCookie bool, rec *l7.Request) (exResult, error) {
	_ = uc.c.SetDeadline(time.Now().Add(st.cfg.MemberTimeout))
	w := uc.bw
	w.Write(h.requestLine)
	w.WriteString("\r\n")
	for _, sp := range h.lines[1:] {
		line := h.buf[sp[0]:sp[1]]
		name := line[:bytes.IndexByte(line, ':')]
		if hopByHop(name) || equalFold(name, "x-forwarded-for") ||
			(st.cfg.XForwardedPort && equalFold(name, "x-forwarded-port")) ||
			(st.cfg.XForwardedProto && equalFold(name, "x-forwarded-proto")) {
			continue
		}
		w.Write(line)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Forwarded-For: ")
	if len(h.xff) > 0 {
		w.Write(h.xff)
		w.WriteString(", ")
	}
	w.WriteString(ip)
	w.WriteString("\r\n")
	if st.cfg.XForwardedPort {
		w.WriteString("X-Forwarded-Port: ")
		w.WriteString(st.port)
		w.WriteString("\r\n")
	}
	if st.cfg.XForwardedProto {
		w.WriteString("X-Forwarded-Proto: http\r\n")
	}
	w.WriteString("\r\n")
	if h.contentLength > 0 {
		if err := w.Flush(); err != nil {
			return exRetry, err
		}
		if _, err := io.CopyN(w, br, h.contentLength); err != nil {
			return exClientGone, err
		}
	}
	if err := w.Flush(); err != nil {
		return exRetry, err
	}
	// Response head (skipping 1xx interim responses other than 101). Until
	// the head is complete it sits in bw unflushed (heads beyond bw's size
	// aside), so a failure can still become a clean 502 or a retry.
	headBytes := 0
	headFail := func(err error) (exResult, error) {
		if headBytes <= bw.Size() {
			bw.Reset(c)
			return exRetry, err
		}
		return exFailedMidway, err
	}
	var status int
	var contentLength int64 = -1
	var chunked, closeUp bool
	for {
		line, err := uc.br.ReadSlice('\n')
		if err != nil {
			return headFail(err)
		}
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
			return headFail(errBadHead)
		}
		status, err = strconv.Atoi(string(line[9:12]))
		if err != nil {
			return headFail(errBadHead)
		}
		if line[7] == '0' {
			closeUp = true // HTTP/1.0 member
		}
		headBytes += len(line)
		bw.Write(line)
		// Headers.
		for {
			hl, err := uc.br.ReadSlice('\n')
			if err != nil {
				return headFail(err)
			}
			trimmed := bytes.TrimRight(hl, "\r\n")
			if len(trimmed) == 0 {
				break
			}
			colon := bytes.IndexByte(trimmed, ':')
			if colon <= 0 {
				return headFail(errBadHead)
			}
			name, value := trimmed[:colon], bytes.TrimSpace(trimmed[colon+1:])
			switch {
			case equalFold(name, "content-length"):
				contentLength, err = strconv.ParseInt(string(value), 10, 64)
				if err != nil {
					return headFail(errBadHead)
				}
			case equalFold(name, "transfer-encoding"):
				chunked = containsFold(value, "chunked")
				if chunked {
					headBytes += 28
					bw.WriteString("Transfer-Encoding: chunked\r\n")
				}
				continue
			case equalFold(name, "connection"):
				if containsFold(value, "close") {
					closeUp = true
				}
			}
			if hopByHop(name) {
				continue
			}
			headBytes += len(hl)
			bw.Write(hl)
		}
		if status >= 100 && status < 200 && status != 101 {
			bw.WriteString("\r\n")
			continue
		}
		break
	}
	if status == 101 {
		return exFailedMidway, errors.New("unexpected 101 from member")
	}
	noBody := string(h.method) == http.MethodHead || status == 204 || status == 304
	untilClose := !noBody && !chunked && contentLength < 0
	if setCookie {
		bw.WriteString("Set-Cookie: " + l7.InsertCookieName + "=" + m.cookie + "; Path=/; HttpOnly\r\n")
	}
	if untilClose || h.closeConn {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	rec.Status, rec.UpstreamStatus = status, status
	before := bw.Buffered()
	var n int64
	var err error
	switch {
	case noBody:
	case chunked:
		n, err = copyChunked(bw, uc.br)
	case contentLength >= 0:
		n, err = io.CopyN(bw, uc.br, contentLength)
	default:
		n, err = io.Copy(bw, uc.br)
		closeUp = true
	}
	rec.BytesOut = int64(before) + n
	if err != nil {
		return exFailedMidway, err
	}
	if err := bw.Flush(); err != nil {
		return exClientGone, err
	}
	if untilClose {
		return exOKCloseBoth, nil
	}
	if closeUp {
		return exOKClose, nil
	}
	return exOK, nil
}

// copyChunked relays a chunked body verbatim, trailers included.
func copyChunked(w *bufio.Writer, r *bufio.Reader) (int64, error) {
	var total int64
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return total, err
		}
		w.Write(line)
		sizeText := bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(sizeText, ';'); i >= 0 {
			sizeText = sizeText[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(sizeText)), 16, 64)
		if err != nil || size < 0 {
			return total, errBadHead
		}
		if size == 0 {
			for { // trailers up to the empty line
				tl, err := r.ReadSlice('\n')
				if err != nil {
					return total, err
				}
				w.Write(tl)
				if len(bytes.TrimRight(tl, "\r\n")) == 0 {
					return total, nil
				}
			}
		}
		n, err := io.CopyN(w, r, size+2) // data and CRLF
		total += n
		if err != nil {
			return total, err
		}
	}
}

// replayConn serves bytes already read before the rest of the connection.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// chanListener hands connections to the fallback http.Server.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
