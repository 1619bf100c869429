// Package userspace is the L4 driver of the unprivileged single-machine mode
// (`elb up`): a TCP and UDP forwarder in Go. It binds each VIP:port itself
// (any 127.0.0.0/8 address works without configuration on Linux; other
// addresses are bound with IP_FREEBIND), schedules new connections with the
// IPVS schedulers' rules, and copies bytes with read/write, switching to
// splice(2) (io.Copy between *net.TCPConn) once a connection moves bulk data.
//
// Reconfiguration swaps the scheduling pool atomically: listeners and
// established connections are untouched; a destination with weight 0 gets no
// new connections (draining); a removed service closes its listener but lets
// its established connections finish.
package userspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/elbcloud/elb/agents/l4"
)

// Name is the driver name.
const Name = "userspace"

// Copy modes. splice(2) saves copying bulk data but costs more per small
// message than read/write (a pipe in between: two splices instead of one
// read and one write, plus the pipe's bookkeeping): on request/response
// traffic it used ~40-55 µs of CPU per request against ~33-37 for
// read/write (bench/l4). CopyAuto starts with read/write and switches a
// direction to splice once a read fills the whole buffer, i.e. on bulk.
const (
	CopyAuto   = ""
	CopySplice = "splice"
	CopyBuffer = "buffer"
)

// Config tunes the forwarder.
type Config struct {
	// DialTimeout bounds connecting to a destination (default 3 s).
	DialTimeout time.Duration
	// UDPIdleTimeout ends a UDP flow after this long without packets
	// (default 30 s).
	UDPIdleTimeout time.Duration
	// Copy chooses how TCP bytes are moved: CopyAuto (default), CopySplice
	// or CopyBuffer.
	Copy string
	Log  *slog.Logger
}

// Driver is the userspace forwarder.
type Driver struct {
	cfg    Config
	log    *slog.Logger
	now    func() int64
	dialer net.Dialer

	mu   sync.Mutex
	svcs map[l4.Key]*service
	// retired services no longer listen but may still carry established
	// connections, which Close ends.
	retired []*service
	closed  bool
	conns   sync.WaitGroup
}

var _ l4.Driver = (*Driver)(nil)
var _ l4.StatsReader = (*Driver)(nil)

// New returns a forwarder with no services.
func New(cfg Config) *Driver {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 3 * time.Second
	}
	if cfg.UDPIdleTimeout <= 0 {
		cfg.UDPIdleTimeout = 30 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Driver{cfg: cfg, log: log.With("driver", Name), svcs: map[l4.Key]*service{},
		dialer: net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: -1},
		now:    func() int64 { return time.Now().Unix() }}
}

// Probe reports whether the forwarder can run; it always can.
func Probe() error { return nil }

// Name implements l4.Driver.
func (d *Driver) Name() string { return Name }

type service struct {
	d    *Driver
	key  l4.Key
	spec atomic.Pointer[l4.Service]
	pool atomic.Pointer[pool]

	backends map[netip.AddrPort]*backend // guarded by Driver.mu; pools hold their own pointers
	conns    atomic.Uint64
	active   atomic.Int64
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64

	ln net.Listener   // tcp
	pc net.PacketConn // udp
	// open tracks established TCP connections so that Close can end them.
	openMu  sync.Mutex
	open    map[net.Conn]struct{}
	closing bool // guarded by openMu
	udp     map[string]*udpFlow
}

// Apply implements l4.Driver.
func (d *Driver) Apply(ctx context.Context, desired l4.State) error {
	if err := desired.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return net.ErrClosed
	}
	// Forget retired services whose last connection ended.
	d.retired = slices.DeleteFunc(d.retired, func(s *service) bool { return s.active.Load() == 0 })
	want := map[l4.Key]bool{}
	var errs []error
	for _, s := range desired.Services {
		want[s.Key()] = true
		svc, ok := d.svcs[s.Key()]
		if !ok {
			var err error
			if svc, err = d.start(s); err != nil {
				errs = append(errs, fmt.Errorf("start %s: %w", s.Key(), err))
				continue
			}
			d.svcs[s.Key()] = svc
			d.log.Info("service added", "service", s.Key().String(), "scheduler", s.Scheduler)
			continue
		}
		svc.reconfigure(s)
	}
	for k, svc := range d.svcs {
		if !want[k] {
			svc.stopListening()
			delete(d.svcs, k)
			d.retired = append(d.retired, svc)
			d.log.Info("service removed", "service", k.String())
		}
	}
	return errors.Join(errs...)
}

// reconfigure installs a new pool. Driver.mu must be held.
func (s *service) reconfigure(spec l4.Service) {
	keep := map[netip.AddrPort]bool{}
	for _, dst := range spec.Destinations {
		ap := dst.AddrPort()
		keep[ap] = true
		if s.backends[ap] == nil {
			s.backends[ap] = &backend{ap: ap}
		}
	}
	for ap := range s.backends {
		if !keep[ap] {
			// Connections already open hold their own pointer and finish.
			delete(s.backends, ap)
		}
	}
	spec.Destinations = append([]l4.Destination(nil), spec.Destinations...)
	s.spec.Store(&spec)
	s.pool.Store(newPool(spec, s.backends, s.d.now))
}

// listenConfig binds with IP_FREEBIND and without Go's per-connection TCP
// keepalive setup (three setsockopt calls per accepted connection; the
// backend and the client own their keepalive policy).
func listenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAlive: -1, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// Bind VIPs that are not (yet) configured on an interface, as a
			// VRRP backup must.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		})
		return errors.Join(err, serr)
	}}
}

// start binds a new service and starts serving it. Driver.mu must be held.
func (d *Driver) start(spec l4.Service) (*service, error) {
	s := &service{d: d, key: spec.Key(), backends: map[netip.AddrPort]*backend{}, open: map[net.Conn]struct{}{}}
	// The pool must exist before the first connection can be accepted.
	s.reconfigure(spec)
	addr := netip.AddrPortFrom(spec.VIP, spec.Port).String()
	lc := listenConfig()
	switch spec.Protocol {
	case l4.TCP:
		ln, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			return nil, err
		}
		s.ln = ln
		go s.acceptLoop()
	case l4.UDP:
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			return nil, err
		}
		s.pc = pc
		s.udp = map[string]*udpFlow{}
		go s.udpLoop()
	}
	return s, nil
}

func (s *service) stopListening() {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.pc != nil {
		s.pc.Close()
	}
}

func (s *service) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.d.log.Warn("accept", "service", s.key.String(), "err", err)
			time.Sleep(10 * time.Millisecond) // EMFILE and friends: back off, don't spin
			continue
		}
		s.d.conns.Add(1)
		go func() {
			defer s.d.conns.Done()
			s.handleTCP(c.(*net.TCPConn))
		}()
	}
}

func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// track adds or removes an established connection; adding fails once the
// driver is closing (Close ends every tracked connection).
func (s *service) track(c net.Conn, add bool) bool {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if !add {
		delete(s.open, c)
		return true
	}
	if s.closing {
		return false
	}
	s.open[c] = struct{}{}
	return true
}

func (s *service) handleTCP(client *net.TCPConn) {
	defer client.Close()
	src := addrOf(client.RemoteAddr())
	var up *net.TCPConn
	var b *backend
	// Two tries: a destination that refuses is skipped once, as a health
	// check would do a few seconds later anyway.
	for try := 0; try < 2 && up == nil; try++ {
		b = s.pool.Load().pick(src, s.key.VIP)
		if b == nil {
			return
		}
		c, err := s.d.dialer.Dial("tcp", b.ap.String())
		if err != nil {
			s.d.log.Debug("dial destination", "service", s.key.String(), "destination", b.ap.String(), "err", err)
			continue
		}
		up = c.(*net.TCPConn)
	}
	if up == nil {
		return
	}
	defer up.Close()
	if !s.track(client, true) || !s.track(up, true) {
		return // the driver is closing
	}
	defer s.track(client, false)
	defer s.track(up, false)
	b.conns.Add(1)
	b.active.Add(1)
	s.conns.Add(1)
	s.active.Add(1)
	defer b.active.Add(-1)
	defer s.active.Add(-1)

	// EOF on one side is passed on as a half-close; an error (reset,
	// timeout) aborts both sides, so that neither waits for a peer that
	// is gone.
	done := make(chan struct{})
	go func() {
		n, err := s.d.copy(up, client)
		b.bytesIn.Add(uint64(n))
		s.bytesIn.Add(uint64(n))
		if err != nil {
			client.Close()
			up.Close()
		} else {
			up.CloseWrite()
		}
		close(done)
	}()
	n, err := s.d.copy(client, up)
	b.bytesOut.Add(uint64(n))
	s.bytesOut.Add(uint64(n))
	if err != nil {
		client.Close()
		up.Close()
	} else {
		client.CloseWrite()
	}
	<-done
}

const copyBufSize = 16 * 1024

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copy moves bytes from src to dst until EOF, as Config.Copy says.
func (d *Driver) copy(dst, src *net.TCPConn) (int64, error) {
	if d.cfg.Copy == CopySplice {
		return io.Copy(dst, src) // *net.TCPConn.ReadFrom(*net.TCPConn) splices
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return total, nil
			}
			return total, rerr
		}
		if n == len(buf) && d.cfg.Copy == CopyAuto {
			// Bulk transfer: splice the rest.
			m, err := io.Copy(dst, src)
			return total + m, err
		}
	}
}

type udpFlow struct {
	up   *net.UDPConn
	b    *backend
	last atomic.Int64
}

func (s *service) udpLoop() {
	buf := make([]byte, 64*1024)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.openMu.Lock()
				for _, f := range s.udp {
					f.up.Close()
				}
				s.openMu.Unlock()
				return
			}
			continue
		}
		key := from.String()
		s.openMu.Lock()
		f := s.udp[key]
		s.openMu.Unlock()
		if f == nil {
			b := s.pool.Load().pick(addrOf(from), s.key.VIP)
			if b == nil {
				continue
			}
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(b.ap))
			if err != nil {
				continue
			}
			f = &udpFlow{up: c, b: b}
			s.openMu.Lock()
			s.udp[key] = f
			s.openMu.Unlock()
			b.conns.Add(1)
			b.active.Add(1)
			s.conns.Add(1)
			s.active.Add(1)
			s.d.conns.Add(1)
			go s.udpReturn(key, from, f)
		}
		f.last.Store(time.Now().UnixNano())
		if m, err := f.up.Write(buf[:n]); err == nil {
			f.b.bytesIn.Add(uint64(m))
			s.bytesIn.Add(uint64(m))
		}
	}
}

// udpReturn copies replies back to the client until the flow idles out.
func (s *service) udpReturn(key string, client net.Addr, f *udpFlow) {
	defer s.d.conns.Done()
	defer func() {
		s.openMu.Lock()
		delete(s.udp, key)
		s.openMu.Unlock()
		f.up.Close()
		f.b.active.Add(-1)
		s.active.Add(-1)
	}()
	buf := make([]byte, 64*1024)
	idle := s.d.cfg.UDPIdleTimeout
	for {
		f.up.SetReadDeadline(time.Now().Add(idle))
		n, err := f.up.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, f.last.Load())) < idle {
				continue
			}
			return
		}
		f.last.Store(time.Now().UnixNano())
		if m, err := s.pc.WriteTo(buf[:n], client); err == nil {
			f.b.bytesOut.Add(uint64(m))
			s.bytesOut.Add(uint64(m))
		} else if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Observed implements l4.Driver: the services the forwarder serves now.
func (d *Driver) Observed(ctx context.Context) (l4.State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var st l4.State
	for _, s := range d.svcs {
		st.Services = append(st.Services, *s.spec.Load())
	}
	return l4.Normalize(st), nil
}

// Stats implements l4.StatsReader.
func (d *Driver) Stats(ctx context.Context) ([]l4.ServiceStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []l4.ServiceStats
	for k, s := range d.svcs {
		ss := l4.ServiceStats{Key: k, Total: l4.Stats{Connections: s.conns.Load(), Active: uint64(max(0, s.active.Load())),
			BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load()}, Destinations: map[netip.AddrPort]l4.Stats{}}
		for ap, b := range s.backends {
			ss.Destinations[ap] = l4.Stats{Connections: b.conns.Load(), Active: uint64(max(0, b.active.Load())),
				BytesIn: b.bytesIn.Load(), BytesOut: b.bytesOut.Load()}
		}
		out = append(out, ss)
	}
	return out, nil
}

// Close stops every listener, ends established connections and waits for
// their goroutines.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	all := d.retired
	for _, s := range d.svcs {
		all = append(all, s)
	}
	for _, s := range all {
		s.stopListening()
		s.openMu.Lock()
		s.closing = true
		for c := range s.open {
			c.Close()
		}
		s.openMu.Unlock()
	}
	d.svcs, d.retired = map[l4.Key]*service{}, nil
	d.mu.Unlock()
	d.conns.Wait()
	return nil
}
