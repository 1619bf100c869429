// Package nginx is the L7 driver that programs nginx (Debian's nginx-light;
// tengine reads the same config): it renders nginx.conf, checks it with
// `nginx -t`, starts nginx in its own prefix dir, reloads gracefully with
// SIGHUP, and tails the JSON access log for metrics.
package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/elbcloud/elb/agents/l7"
)

// Errors of the nginx driver.
var (
	// ErrConfigTest is returned when `nginx -t` rejects the rendered config;
	// the running config stays.
	ErrConfigTest = errors.New("nginx config test failed")
	// ErrStart is returned when nginx does not start.
	ErrStart = errors.New("nginx start failed")
	// ErrReload is returned when a reload does not become live in time (the
	// old config keeps serving).
	ErrReload = errors.New("nginx reload not applied")
)

// DefaultBinary is Debian's nginx.
const DefaultBinary = "/usr/sbin/nginx"

// Options configure the driver.
type Options struct {
	Binary string // default DefaultBinary
	// Dir is nginx's prefix dir (config, pid, logs, temp files, status socket).
	Dir    string
	Render RenderOptions
	// ReloadTimeout bounds the wait for a new config to be live (default 10 s).
	ReloadTimeout time.Duration
	// MaxAccessLogBytes rotates the access log beyond this size (default 64 MiB).
	MaxAccessLogBytes int64
	// KeepRunning leaves nginx serving when the driver closes (agent
	// restarts and upgrades); the next driver adopts it from the pid file.
	KeepRunning bool
	Logger      *slog.Logger
}

// Driver is the nginx L7 driver.
type Driver struct {
	opts   Options
	paths  Paths
	log    *slog.Logger
	acc    *l7.Accumulator
	status *http.Client

	mu      sync.Mutex
	gen     uint64
	current []byte // rendered config (generation 0) that is live
	pid     int
	closed  bool

	stopTail chan struct{}
	tailDone chan struct{}
}

// New checks the binary and prepares the prefix dir; nginx starts on the
// first Apply.
func New(opts Options) (*Driver, error) {
	if opts.Binary == "" {
		opts.Binary = DefaultBinary
	}
	if opts.Dir == "" {
		return nil, fmt.Errorf("%w: nginx dir missing", l7.ErrInvalidDesired)
	}
	if opts.ReloadTimeout <= 0 {
		opts.ReloadTimeout = 10 * time.Second
	}
	if opts.MaxAccessLogBytes <= 0 {
		opts.MaxAccessLogBytes = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if _, err := exec.LookPath(opts.Binary); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	p := Paths{Dir: dir}
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStart, err)
		}
	}
	sock := p.StatusSocket()
	d := &Driver{
		opts: opts, paths: p, log: opts.Logger.With("driver", "nginx"), acc: l7.NewAccumulator(),
		status: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var dl net.Dialer
				return dl.DialContext(ctx, "unix", sock)
			},
			DisableKeepAlives: true,
		}},
		stopTail: make(chan struct{}),
		tailDone: make(chan struct{}),
	}
	go d.tail()
	return d, nil
}

// Available reports whether an nginx binary is usable (for driver "auto").
func Available(binary string) bool {
	if binary == "" {
		binary = DefaultBinary
	}
	_, err := exec.LookPath(binary)
	return err == nil
}

// Name implements l7.Driver.
func (d *Driver) Name() string { return "nginx" }

// Paths returns the driver's files.
func (d *Driver) Paths() Paths { return d.paths }

// Apply implements l7.Driver: render, compare with the live config, test,
// swap the file, start or reload, and wait until the new generation serves.
func (d *Driver) Apply(ctx context.Context, desired l7.Desired) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return l7.ErrDriverClosed
	}
	body, err := Render(desired, d.paths, d.opts.Render, 0)
	if err != nil {
		return err
	}
	alive := d.aliveLocked()
	if alive && bytes.Equal(body, d.current) {
		return nil // observed == desired
	}
	gen := d.gen + 1
	conf, err := Render(desired, d.paths, d.opts.Render, gen)
	if err != nil {
		return err
	}
	next := d.paths.Conf() + ".next"
	if err := os.WriteFile(next, conf, 0o640); err != nil {
		return fmt.Errorf("write nginx config: %w", err)
	}
	if out, err := d.run(ctx, "-t", "-q", "-c", next); err != nil {
		return fmt.Errorf("%w: %s", ErrConfigTest, strings.TrimSpace(out))
	}
	if err := os.Rename(next, d.paths.Conf()); err != nil {
		return fmt.Errorf("install nginx config: %w", err)
	}
	d.gen = gen
	d.current = nil
	var oldWorkers []int
	if alive {
		oldWorkers = children(d.pid)
		if err := syscall.Kill(d.pid, syscall.SIGHUP); err != nil {
			return fmt.Errorf("%w: signal %d: %w", ErrReload, d.pid, err)
		}
	} else if err := d.startLocked(ctx); err != nil {
		return err
	}
	if err := d.waitGeneration(ctx, gen); err != nil {
		return err
	}
	// New workers serve the new config, but old ones accept connections
	// until they handle their QUIT; they retitle themselves "worker process
	// is shutting down" right before closing the listening sockets.
	if err := d.waitRetired(ctx, oldWorkers); err != nil {
		return err
	}
	d.current = body
	d.log.Info("nginx config live", "generation", gen, "listeners", len(desired.Listeners), "pid", d.pid)
	return nil
}

func (d *Driver) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, d.opts.Binary, append([]string{"-p", d.paths.Dir + "/", "-e", d.paths.ErrorLog()}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startLocked adopts a running master from the pid file (agent restart) or
// starts a new one. nginx daemonizes: the master outlives an agent crash and
// keeps forwarding.
func (d *Driver) startLocked(ctx context.Context) error {
	if pid := readPID(d.paths.PID()); pid > 0 && isNginx(pid) {
		d.pid = pid
		d.log.Info("adopting running nginx", "pid", pid)
		return syscall.Kill(pid, syscall.SIGHUP)
	}
	_ = os.Remove(d.paths.StatusSocket()) // stale after a crash
	if out, err := d.run(ctx, "-c", d.paths.Conf()); err != nil {
		return fmt.Errorf("%w: %s%s", ErrStart, strings.TrimSpace(out), d.errorLogTail())
	}
	deadline := time.Now().Add(d.opts.ReloadTimeout)
	for {
		if pid := readPID(d.paths.PID()); pid > 0 && isNginx(pid) {
			d.pid = pid
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: no pid file%s", ErrStart, d.errorLogTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGeneration polls the status socket until the new config serves: after
// a reload the old workers stop accepting, so an answer with the new
// generation means new workers run the new config.
func (d *Driver) waitGeneration(ctx context.Context, gen uint64) error {
	want := strconv.FormatUint(gen, 10)
	deadline := time.Now().Add(d.opts.ReloadTimeout)
	for {
		if got, err := d.statusGet(ctx, "/generation"); err == nil && got == want {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%w: generation %d not live after %v%s", ErrReload, gen, d.opts.ReloadTimeout, d.errorLogTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *Driver) waitRetired(ctx context.Context, pids []int) error {
	deadline := time.Now().Add(d.opts.ReloadTimeout)
	for _, pid := range pids {
		for !retired(pid) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%w: old worker %d still accepting after %v", ErrReload, pid, d.opts.ReloadTimeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// retired reports whether a worker has exited or is shutting down.
func retired(pid int) bool {
	if !isNginx(pid) {
		return true
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err != nil || bytes.Contains(cmd, []byte("shutting down"))
}

func (d *Driver) statusGet(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://nginx"+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := d.status.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return string(b), err
}

func (d *Driver) errorLogTail() string {
	b, err := os.ReadFile(d.paths.ErrorLog())
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return "; error log: " + strings.TrimSpace(string(b))
}

func (d *Driver) aliveLocked() bool {
	return d.pid > 0 && isNginx(d.pid)
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// isNginx reports whether pid is a live (not zombie) nginx process.
func isNginx(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Format: pid (comm) state ...
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	return bytes.Contains(stat[:i], []byte("nginx"))
}

// Stats implements l7.Driver.
func (d *Driver) Stats() l7.Snapshot {
	s := l7.Snapshot{Listeners: d.acc.Take(), NodeActiveConnections: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if body, err := d.statusGet(ctx, "/stub_status"); err == nil {
		// "Active connections: 3 \n..."; the status request itself is one.
		if f := strings.Fields(body); len(f) > 2 && f[0] == "Active" {
			if n, err := strconv.Atoi(f[2]); err == nil {
				s.NodeActiveConnections = max(n-1, 0)
			}
		}
	}
	return s
}

// Close stops nginx gracefully (SIGQUIT: workers finish open requests) and
// the log tailer.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	pid := d.pid
	alive := d.aliveLocked()
	d.mu.Unlock()
	if alive && d.opts.KeepRunning {
		d.log.Info("leaving nginx running", "pid", pid)
	} else if alive {
		_ = syscall.Kill(pid, syscall.SIGQUIT)
		deadline := time.Now().Add(10 * time.Second)
		for isNginx(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if isNginx(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	close(d.stopTail)
	<-d.tailDone
	return nil
}
