// Package local is the compute driver of the single-machine mode: every
// tengine node is an agent process on this machine with its own loopback
// address (127.101.x.y by default). The processes outlive the provisioner;
// their PIDs are kept in a state file in the data dir so that a restarted
// provisioner adopts the ones still running and re-spawns the ones that died.
package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/services/provisioner/compute"
	"github.com/nats-io/nats.go/jetstream"
)

// Readiness says when a spawned node counts as ready.
type Readiness string

// Readiness modes.
const (
	// ReadyHeartbeat waits for the agent's first heartbeat after the spawn
	// (needs Config.JS). This is what `elb up` uses.
	ReadyHeartbeat Readiness = "heartbeat"
	// ReadyProcess waits until the process has stayed up for Settle.
	ReadyProcess Readiness = "process"
)

// ErrConfig is returned by New for an unusable configuration.
var ErrConfig = errors.New("local driver config")

// Vars are the fields the argv template can use.
type Vars struct {
	NodeID   string
	Role     string
	Address  string
	NATSURL  string
	User     string
	Password string
	StateDir string
}

// DefaultArgv is the command line `elb up` uses: the elb binary re-executed
// as a tengine agent with the built-in proxy.
func DefaultArgv(exe string) []string {
	return []string{exe, "agent", "--role", "{{.Role}}", "--node-id", "{{.NodeID}}", "--address", "{{.Address}}",
		"--nats", "{{.NATSURL}}", "--user", "{{.User}}", "--password", "{{.Password}}", "--driver", "builtin", "--state-dir", "{{.StateDir}}"}
}

// Config configures the driver.
type Config struct {
	// Argv is the agent command line; every element is a text/template over
	// Vars (e.g. DefaultArgv(os.Args[0])). The password is also passed in
	// the environment as ELB_AGENT_PASSWORD.
	Argv []string
	// Env is added to the agent's environment.
	Env []string
	// DataDir holds the state file, and per node a state dir and a log file.
	DataDir string
	// CIDR is where node addresses come from; default 127.101.0.0/16.
	CIDR string
	// NATSURL is the URL agents connect to.
	NATSURL string
	// AgentSecret derives each agent's password (natsx.AgentPassword).
	AgentSecret string
	// Readiness defaults to ReadyHeartbeat when JS is set, else ReadyProcess.
	Readiness Readiness
	// JS reads heartbeats for ReadyHeartbeat.
	JS jetstream.JetStream
	// Settle is how long a process must stay up for ReadyProcess (200 ms).
	Settle time.Duration
	// StopGrace is how long Delete waits after SIGTERM before SIGKILL (5 s).
	StopGrace time.Duration
	Logger    *slog.Logger
}

// Driver runs nodes as local processes. It is safe for concurrent use.
type Driver struct {
	cfg    Config
	argv   []*template.Template
	prefix netip.Prefix
	log    *slog.Logger
	hb     jetstream.Stream

	mu sync.Mutex // guards the state file and procs
}

type entry struct {
	ID      string    `json:"id"`
	Role    string    `json:"role"`
	Address string    `json:"address"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

type stateFile struct {
	Nodes map[string]*entry `json:"nodes"`
}

// New validates the config and returns the driver.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if len(cfg.Argv) == 0 {
		return nil, fmt.Errorf("%w: argv template is empty", ErrConfig)
	}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: data dir is required", ErrConfig)
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("%w: data dir: %w", ErrConfig, err)
	}
	cfg.DataDir = abs
	if cfg.CIDR == "" {
		cfg.CIDR = "127.101.0.0/16"
	}
	pfx, err := netip.ParsePrefix(cfg.CIDR)
	if err != nil || !pfx.Addr().Is4() {
		return nil, fmt.Errorf("%w: cidr %q", ErrConfig, cfg.CIDR)
	}
	if cfg.Readiness == "" {
		cfg.Readiness = ReadyProcess
		if cfg.JS != nil {
			cfg.Readiness = ReadyHeartbeat
		}
	}
	if cfg.Readiness != ReadyProcess && cfg.Readiness != ReadyHeartbeat {
		return nil, fmt.Errorf("%w: readiness %q", ErrConfig, cfg.Readiness)
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 200 * time.Millisecond
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 5 * time.Second
	}
	d := &Driver{cfg: cfg, prefix: pfx.Masked(), log: cfg.Logger}
	if d.log == nil {
		d.log = slog.Default()
	}
	for i, a := range cfg.Argv {
		t, err := template.New(strconv.Itoa(i)).Option("missingkey=error").Parse(a)
		if err != nil {
			return nil, fmt.Errorf("%w: argv[%d]: %w", ErrConfig, i, err)
		}
		d.argv = append(d.argv, t)
	}
	if cfg.Readiness == ReadyHeartbeat {
		if cfg.JS == nil {
			return nil, fmt.Errorf("%w: heartbeat readiness needs JS", ErrConfig)
		}
		d.hb, err = cfg.JS.Stream(ctx, natsx.HeartbeatStream)
		if err != nil {
			return nil, fmt.Errorf("%w: heartbeat stream: %w", ErrConfig, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "nodes"), 0o750); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return d, nil
}

func (d *Driver) statePath() string { return filepath.Join(d.cfg.DataDir, "local-nodes.json") }

// loadState reads the state file. d.mu must be held.
func (d *Driver) loadState() (*stateFile, error) {
	st := &stateFile{Nodes: map[string]*entry{}}
	b, err := os.ReadFile(d.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read local node state: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("decode local node state %s: %w", d.statePath(), err)
	}
	if st.Nodes == nil {
		st.Nodes = map[string]*entry{}
	}
	return st, nil
}

// saveState writes the state file atomically. d.mu must be held.
func (d *Driver) saveState(st *stateFile) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := d.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write local node state: %w", err)
	}
	if err := os.Rename(tmp, d.statePath()); err != nil {
		return fmt.Errorf("write local node state: %w", err)
	}
	return nil
}

func (d *Driver) freeAddr(st *stateFile) (netip.Addr, error) {
	used := map[string]bool{}
	for _, e := range st.Nodes {
		used[e.Address] = true
	}
	for a := d.prefix.Addr().Next().Next(); d.prefix.Contains(a); a = a.Next() {
		b := a.As4()
		if b[3] == 0 || b[3] == 255 || used[a.String()] {
			continue
		}
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("local driver: no free address in %s", d.prefix)
}

func (d *Driver) stateDir(id string) string { return filepath.Join(d.cfg.DataDir, "nodes", id) }

func (d *Driver) vars(e *entry) Vars {
	return Vars{NodeID: e.ID, Role: e.Role, Address: e.Address, NATSURL: d.cfg.NATSURL, User: natsx.AgentUser(e.ID),
		Password: natsx.AgentPassword(d.cfg.AgentSecret, e.ID), StateDir: d.stateDir(e.ID)}
}

// Argv renders the command line of a node (exported for the README's
// example and tests).
func (d *Driver) Argv(v Vars) ([]string, error) {
	out := make([]string, 0, len(d.argv))
	for _, t := range d.argv {
		var b bytes.Buffer
		if err := t.Execute(&b, v); err != nil {
			return nil, fmt.Errorf("render agent argv: %w", err)
		}
		out = append(out, b.String())
	}
	return out, nil
}

// spawn starts the agent process of e. d.mu must be held.
func (d *Driver) spawn(e *entry) error {
	v := d.vars(e)
	argv, err := d.Argv(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(v.StateDir, 0o750); err != nil {
		return fmt.Errorf("node %s state dir: %w", e.ID, err)
	}
	logf, err := os.OpenFile(filepath.Join(v.StateDir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("node %s log: %w", e.ID, err)
	}
	defer logf.Close()
	// Not CommandContext: the agent must outlive the call (and the
	// provisioner); Delete stops it.
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), d.cfg.Env...), "ELB_AGENT_PASSWORD="+v.Password, envNode+e.ID, envDir+d.cfg.DataDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = v.StateDir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start agent for node %s: %w", e.ID, err)
	}
	go func() { _ = cmd.Wait() }() // reap; a dead child must not linger as a zombie
	e.PID = cmd.Process.Pid
	e.Started = time.Now().UTC()
	d.log.Info("node process started", "node", e.ID, "pid", e.PID, "address", e.Address)
	return nil
}

// Create starts (or adopts) the node's agent process and waits until ready.
func (d *Driver) Create(ctx context.Context, spec compute.Spec) (compute.Node, error) {
	if !events.ValidToken(spec.NodeID) {
		return compute.Node{}, fmt.Errorf("%w: node id %q", compute.ErrInvalidSpec, spec.NodeID)
	}
	role := spec.Role
	if role == "" {
		role = events.RoleTengine
	}
	d.mu.Lock()
	st, err := d.loadState()
	if err != nil {
		d.mu.Unlock()
		return compute.Node{}, err
	}
	e, ok := st.Nodes[spec.NodeID]
	if !ok {
		addr, err := d.freeAddr(st)
		if err != nil {
			d.mu.Unlock()
			return compute.Node{}, err
		}
		e = &entry{ID: spec.NodeID, Role: role, Address: addr.String()}
		st.Nodes[e.ID] = e
		// Reserve the address before the spawn: a crash in between leaves
		// an entry, never a process nobody knows about.
		if err := d.saveState(st); err != nil {
			d.mu.Unlock()
			return compute.Node{}, err
		}
	}
	if pid := d.findProcess(e.PID, e.ID); pid > 0 {
		e.PID = pid
	} else if err := d.spawn(e); err != nil {
		d.mu.Unlock()
		return compute.Node{}, err
	}
	err = d.saveState(st)
	cur := *e
	d.mu.Unlock()
	if err != nil {
		return compute.Node{}, err
	}
	if err := d.waitReady(ctx, &cur); err != nil {
		return compute.Node{}, err
	}
	return compute.Node{ID: cur.ID, ServerID: "pid-" + strconv.Itoa(cur.PID), Address: cur.Address, Ready: true}, nil
}

func (d *Driver) waitReady(ctx context.Context, e *entry) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	subject := events.AgentSubject(e.ID, events.ReportHeartbeat)
	for {
		if d.findProcess(e.PID, e.ID) == 0 {
			return fmt.Errorf("%w: node %s: agent process %d exited: %s", compute.ErrNotReady, e.ID, e.PID, d.logTail(e.ID))
		}
		switch d.cfg.Readiness {
		case ReadyProcess:
			if time.Since(e.Started) >= d.cfg.Settle {
				return nil
			}
		case ReadyHeartbeat:
			m, err := d.hb.GetLastMsgForSubject(ctx, subject)
			if err == nil {
				var hb events.Heartbeat
				if json.Unmarshal(m.Data, &hb) == nil && !hb.Time.Before(e.Started.Add(-time.Second)) {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: node %s: %w", compute.ErrNotReady, e.ID, ctx.Err())
		case <-tick.C:
		}
	}
}

func (d *Driver) logTail(id string) string {
	b, err := os.ReadFile(filepath.Join(d.stateDir(id), "agent.log"))
	if err != nil {
		return "no log"
	}
	if len(b) > 400 {
		b = b[len(b)-400:]
	}
	return strings.TrimSpace(string(b))
}

// Delete stops the node's process (SIGTERM, SIGKILL after the grace period)
// and forgets the node.
func (d *Driver) Delete(ctx context.Context, nodeID string) error {
	d.mu.Lock()
	st, err := d.loadState()
	d.mu.Unlock()
	if err != nil {
		return err
	}
	pid := 0
	if e, ok := st.Nodes[nodeID]; ok {
		pid = e.PID
	}
	if p := d.findProcess(pid, nodeID); p > 0 {
		if err := stop(ctx, p, nodeID, d.cfg.DataDir, d.cfg.StopGrace); err != nil {
			return fmt.Errorf("delete node %s: %w", nodeID, err)
		}
		d.log.Info("node process stopped", "node", nodeID, "pid", p)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err = d.loadState()
	if err != nil {
		return err
	}
	if _, ok := st.Nodes[nodeID]; ok {
		delete(st.Nodes, nodeID)
		if err := d.saveState(st); err != nil {
			return err
		}
	}
	_ = os.RemoveAll(d.stateDir(nodeID))
	return nil
}

func stop(ctx context.Context, pid int, nodeID, dir string, grace time.Duration) error {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	killAt := time.Now().Add(grace)
	killed := false
	for findProcess(pid, nodeID, dir) > 0 {
		if !killed && time.Now().After(killAt) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed = true
		}
		select {
		case <-ctx.Done():
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// List returns every node in the state file; Ready says its process runs.
func (d *Driver) List(ctx context.Context) ([]compute.Node, error) {
	d.mu.Lock()
	st, err := d.loadState()
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make([]compute.Node, 0, len(st.Nodes))
	for _, e := range st.Nodes {
		pid := d.findProcess(e.PID, e.ID)
		out = append(out, compute.Node{ID: e.ID, ServerID: "pid-" + strconv.Itoa(pid), Address: e.Address, Ready: pid > 0})
	}
	return out, nil
}

// Recover re-spawns every known node whose process is gone (the machine or
// `elb up` restarted) and adopts the ones still running.
func (d *Driver) Recover(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.loadState()
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range st.Nodes {
		if pid := d.findProcess(e.PID, e.ID); pid > 0 {
			e.PID = pid
			continue
		}
		if err := d.spawn(e); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.saveState(st); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Environment variables that mark a node process as this driver's: a
// process is only adopted or stopped when both match, so drivers with other
// data dirs (other tests, another `elb up`) never touch each other's nodes.
const (
	envNode = "ELB_NODE_ID="
	envDir  = "ELB_LOCAL_DIR="
)

func (d *Driver) findProcess(pid int, nodeID string) int {
	return findProcess(pid, nodeID, d.cfg.DataDir)
}

// findProcess returns the pid of the live process running node id for the
// driver with data dir dir: pid when it still is that node's agent, else one
// found by scanning /proc (a crash between spawn and the state write leaves
// such a process). 0 means none runs.
func findProcess(pid int, nodeID, dir string) int {
	if pid > 0 && runsNode(pid, nodeID, dir) {
		return pid
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, de := range ents {
		p, err := strconv.Atoi(de.Name())
		if err != nil || p == pid || p == os.Getpid() {
			continue
		}
		if runsNode(p, nodeID, dir) {
			return p
		}
	}
	return 0
}

func runsNode(pid int, nodeID, dir string) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	environ, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	node, owned := false, false
	for _, kv := range bytes.Split(environ, []byte{0}) {
		switch string(kv) {
		case envNode + nodeID:
			node = true
		case envDir + dir:
			owned = true
		}
	}
	return node && owned
}
