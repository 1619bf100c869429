// Package vrrp drives keepalived (Debian's) for the VRRP master/backup pair
// of an L4 node: it renders keepalived.conf for the node's VIPs, starts
// keepalived with its own pid files in a state directory, reloads it on
// change (SIGHUP), and reports every VRRP state change it reads from
// keepalived's notify FIFO as an events.VRRPReport.
//
// keepalived only moves the VIPs; the virtual services are programmed by
// the L4 driver on both nodes (IPVS answers only where the VIP is local).
package vrrp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/elbcloud/elb/events"
)

// Errors.
var (
	// ErrInvalid wraps a configuration that fails validation.
	ErrInvalid = errors.New("invalid vrrp config")
	// ErrNoKeepalived means the keepalived binary is missing.
	ErrNoKeepalived = errors.New("keepalived not found")
)

// VRRP states as reported.
const (
	StateMaster = "MASTER"
	StateBackup = "BACKUP"
	StateFault  = "FAULT"
	StateStop   = "STOP"
)

// Config is the VRRP part of a node.
type Config struct {
	// RouterID names this node in keepalived's logs.
	RouterID  string
	Instances []Instance
}

// Instance is one vrrp_instance: a group of VIPs that fail over together.
type Instance struct {
	Name      string // [A-Za-z0-9_-]+; reported as VRRPReport.Pair
	Interface string
	// VirtualRouterID is unique per L2 segment and pair, 1..255.
	VirtualRouterID int
	// Priority 1..254: the higher one is master.
	Priority int
	// Backup starts the instance as BACKUP (both nodes may; the priority
	// decides).
	Backup bool
	// NoPreempt keeps a recovered higher-priority node from taking the VIP
	// back (avoids a second interruption).
	NoPreempt bool
	// Advert is the advertisement interval (VRRPv3: 10 ms steps; default 1 s).
	// The backup takes over after about 3 × Advert of silence.
	Advert time.Duration
	// UnicastSrc and UnicastPeers switch from multicast to unicast adverts.
	UnicastSrc   netip.Addr
	UnicastPeers []netip.Addr
	// VIPs are added to Interface with their prefix length.
	VIPs []netip.Prefix
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Validate checks c; errors wrap ErrInvalid.
func (c Config) Validate() error {
	var errs []error
	if c.RouterID != "" && !nameRE.MatchString(c.RouterID) {
		errs = append(errs, fmt.Errorf("router id %q", c.RouterID))
	}
	names, vrids := map[string]bool{}, map[string]bool{}
	for _, in := range c.Instances {
		if !nameRE.MatchString(in.Name) {
			errs = append(errs, fmt.Errorf("instance name %q", in.Name))
		}
		if names[in.Name] {
			errs = append(errs, fmt.Errorf("instance %s: duplicate", in.Name))
		}
		names[in.Name] = true
		if !nameRE.MatchString(in.Interface) || len(in.Interface) > 15 {
			errs = append(errs, fmt.Errorf("instance %s: interface %q", in.Name, in.Interface))
		}
		if in.VirtualRouterID < 1 || in.VirtualRouterID > 255 {
			errs = append(errs, fmt.Errorf("instance %s: virtual_router_id %d out of 1..255", in.Name, in.VirtualRouterID))
		}
		key := fmt.Sprintf("%s/%d", in.Interface, in.VirtualRouterID)
		if vrids[key] {
			errs = append(errs, fmt.Errorf("instance %s: virtual_router_id %d used twice on %s", in.Name, in.VirtualRouterID, in.Interface))
		}
		vrids[key] = true
		if in.Priority < 1 || in.Priority > 254 {
			errs = append(errs, fmt.Errorf("instance %s: priority %d out of 1..254", in.Name, in.Priority))
		}
		if in.Advert < 0 || in.Advert > 40*time.Second || (in.Advert > 0 && in.Advert%(10*time.Millisecond) != 0) {
			errs = append(errs, fmt.Errorf("instance %s: advert %s (10 ms steps up to 40 s)", in.Name, in.Advert))
		}
		if len(in.VIPs) == 0 {
			errs = append(errs, fmt.Errorf("instance %s: no vips", in.Name))
		}
		for _, v := range in.VIPs {
			if !v.IsValid() || v.Addr().Zone() != "" {
				errs = append(errs, fmt.Errorf("instance %s: vip %s", in.Name, v))
			}
		}
		if len(in.UnicastPeers) > 0 && !in.UnicastSrc.IsValid() {
			errs = append(errs, fmt.Errorf("instance %s: unicast peers need a unicast source", in.Name))
		}
		for _, p := range in.UnicastPeers {
			if !p.IsValid() {
				errs = append(errs, fmt.Errorf("instance %s: invalid unicast peer", in.Name))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// Render returns keepalived.conf for c; fifo is the notify FIFO path.
func Render(c Config, fifo string) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Rendered by the elb lvs agent; changes are overwritten.\n")
	w("global_defs {\n")
	if c.RouterID != "" {
		w("    router_id %s\n", c.RouterID)
	}
	w("    vrrp_version 3\n")
	w("    vrrp_notify_fifo %s\n", fifo)
	w("    vrrp_garp_master_delay 1\n")
	w("    vrrp_garp_master_repeat 3\n")
	w("}\n")
	ins := slices.Clone(c.Instances)
	slices.SortFunc(ins, func(a, b Instance) int { return strings.Compare(a.Name, b.Name) })
	for _, in := range ins {
		state := StateMaster
		if in.Backup {
			state = StateBackup
		}
		advert := in.Advert
		if advert == 0 {
			advert = time.Second
		}
		w("\nvrrp_instance %s {\n", in.Name)
		w("    state %s\n", state)
		w("    interface %s\n", in.Interface)
		w("    virtual_router_id %d\n", in.VirtualRouterID)
		w("    priority %d\n", in.Priority)
		w("    advert_int %s\n", strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", advert.Seconds()), "0"), "."))
		if in.NoPreempt {
			w("    nopreempt\n")
		}
		if in.UnicastSrc.IsValid() {
			w("    unicast_src_ip %s\n", in.UnicastSrc)
			w("    unicast_peer {\n")
			for _, p := range in.UnicastPeers {
				w("        %s\n", p)
			}
			w("    }\n")
		}
		w("    virtual_ipaddress {\n")
		for _, v := range in.VIPs {
			w("        %s dev %s\n", v, in.Interface)
		}
		w("    }\n")
		w("}\n")
	}
	return b.Bytes(), nil
}

// Options configure a Manager.
type Options struct {
	NodeID string
	// Dir holds keepalived.conf, the pid files and the notify FIFO; it is
	// created 0700.
	Dir string
	// Binary is the keepalived executable (default: keepalived on PATH).
	Binary string
	// Wrap is prepended to the command line (tests run keepalived in a
	// namespace with nsenter).
	Wrap []string
	// OnState receives every state change (from the FIFO reader goroutine).
	OnState func(events.VRRPReport)
	Logger  *slog.Logger
}

// Manager runs one keepalived.
type Manager struct {
	opts Options
	log  *slog.Logger
	fifo *os.File

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	conf   []byte
	states map[string]string
	closed bool
	wg     sync.WaitGroup
}

// New prepares the state directory and the notify FIFO; keepalived starts
// on the first Apply.
func New(opts Options) (*Manager, error) {
	if opts.Binary == "" {
		opts.Binary = "keepalived"
	}
	if _, err := exec.LookPath(opts.Binary); err != nil {
		return nil, fmt.Errorf("%w: %w (apt-get install keepalived)", ErrNoKeepalived, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("vrrp state dir: %w", err)
	}
	fifo := filepath.Join(opts.Dir, "notify.fifo")
	os.Remove(fifo)
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return nil, fmt.Errorf("vrrp notify fifo: %w", err)
	}
	// Read-write so that the reader never sees EOF when keepalived
	// restarts, and the open does not block waiting for a writer.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("vrrp notify fifo: %w", err)
	}
	m := &Manager{opts: opts, log: opts.Logger.With("component", "vrrp", "node", opts.NodeID), fifo: f, states: map[string]string{}}
	m.wg.Add(1)
	go m.readFIFO()
	return m, nil
}

func (m *Manager) path(name string) string { return filepath.Join(m.opts.Dir, name) }

// Apply renders cfg and starts keepalived, or reloads it when the config
// changed. An invalid cfg changes nothing.
func (m *Manager) Apply(cfg Config) error {
	conf, err := Render(cfg, m.path("notify.fifo"))
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return os.ErrClosed
	}
	running := m.cmd != nil
	if running && bytes.Equal(conf, m.conf) {
		return nil
	}
	tmp := m.path("keepalived.conf.tmp")
	if err := os.WriteFile(tmp, conf, 0o600); err != nil {
		return fmt.Errorf("write keepalived.conf: %w", err)
	}
	if err := os.Rename(tmp, m.path("keepalived.conf")); err != nil {
		return fmt.Errorf("write keepalived.conf: %w", err)
	}
	m.conf = conf
	if running {
		m.log.Info("reloading keepalived")
		return m.cmd.Process.Signal(syscall.SIGHUP)
	}
	return m.startLocked()
}

func (m *Manager) startLocked() error {
	args := append(slices.Clone(m.opts.Wrap), m.opts.Binary,
		"--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"--use-file", m.path("keepalived.conf"),
		"--pid", m.path("keepalived.pid"), "--vrrp_pid", m.path("vrrp.pid"), "--checkers_pid", m.path("checkers.pid"))
	cmd := exec.Command(args[0], args[1:]...)
	logf, err := os.OpenFile(m.path("keepalived.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("keepalived log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: Close and Kill reach the VRRP child too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start keepalived: %w", err)
	}
	m.cmd = cmd
	exited := make(chan struct{})
	m.exited = exited
	m.log.Info("keepalived started", "pid", cmd.Process.Pid, "conf", m.path("keepalived.conf"))
	go func() {
		err := cmd.Wait()
		logf.Close()
		close(exited)
		m.mu.Lock()
		if m.cmd == cmd {
			m.cmd = nil
			if !m.closed {
				m.log.Warn("keepalived exited; it restarts on the next Apply", "err", err)
			}
		}
		m.mu.Unlock()
	}()
	return nil
}

// readFIFO turns keepalived's notify lines (`INSTANCE "VI_1" MASTER 100`)
// into reports.
func (m *Manager) readFIFO() {
	defer m.wg.Done()
	sc := bufio.NewScanner(m.fifo)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "INSTANCE" {
			continue
		}
		name, state := strings.Trim(f[1], `"`), f[2]
		m.mu.Lock()
		changed := m.states[name] != state
		m.states[name] = state
		m.mu.Unlock()
		if !changed {
			continue
		}
		m.log.Info("vrrp state", "instance", name, "state", state)
		if m.opts.OnState != nil {
			m.opts.OnState(events.VRRPReport{NodeID: m.opts.NodeID, Pair: name, State: state, Time: time.Now().UTC()})
		}
	}
}

// States returns the last reported state of each instance.
func (m *Manager) States() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.states))
	for k, v := range m.states {
		out[k] = v
	}
	return out
}

// Kill ends keepalived abruptly (SIGKILL to its process group), as a node
// crash would: the VIPs stay where they are. For tests.
func (m *Manager) Kill() {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.mu.Unlock()
	if cmd != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// Close stops keepalived gracefully (it removes its VIPs) and the reader.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	cmd, exited := m.cmd, m.exited
	m.mu.Unlock()
	if cmd != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	err := m.fifo.Close()
	m.wg.Wait()
	return err
}

// Pair is how a node takes part in its LVS pair; the desired config does not
// carry it (it is node setup, like the interface names).
type Pair struct {
	Name            string
	Interface       string
	VirtualRouterID int
	Priority        int
	Backup          bool
	NoPreempt       bool
	Advert          time.Duration
	UnicastSrc      netip.Addr
	UnicastPeers    []netip.Addr
	// PrefixLen of each VIP on Interface (default 32, or 128 for IPv6).
	PrefixLen int
}

// ForNode returns the keepalived config that moves every VIP of cfg with
// the pair as one vrrp_instance. It has no instance when cfg has no VIP.
func ForNode(cfg *events.NodeConfig, p Pair) (Config, error) {
	in := Instance{Name: p.Name, Interface: p.Interface, VirtualRouterID: p.VirtualRouterID, Priority: p.Priority,
		Backup: p.Backup, NoPreempt: p.NoPreempt, Advert: p.Advert, UnicastSrc: p.UnicastSrc, UnicastPeers: p.UnicastPeers}
	seen := map[netip.Addr]bool{}
	for _, lb := range cfg.LoadBalancers {
		a, err := netip.ParseAddr(lb.VIP)
		if err != nil {
			return Config{}, fmt.Errorf("%w: lb %s vip %q: %w", ErrInvalid, lb.ID, lb.VIP, err)
		}
		if seen[a] {
			continue
		}
		seen[a] = true
		bits := p.PrefixLen
		if bits == 0 || bits > a.BitLen() {
			bits = a.BitLen()
		}
		in.VIPs = append(in.VIPs, netip.PrefixFrom(a, bits))
	}
	slices.SortFunc(in.VIPs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	c := Config{RouterID: cfg.NodeID}
	if len(in.VIPs) > 0 {
		c.Instances = []Instance{in}
	}
	return c, c.Validate()
}
