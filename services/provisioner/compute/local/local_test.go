package local_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/platform/testkit"
	"github.com/elbcloud/elb/services/provisioner/compute"
	"github.com/elbcloud/elb/services/provisioner/compute/computetest"
	"github.com/elbcloud/elb/services/provisioner/compute/local"
	"github.com/elbcloud/elb/services/provisioner/internal/testagent"
)

func TestMain(m *testing.M) {
	testagent.MaybeRunChild()
	os.Exit(m.Run())
}

func newDriver(t *testing.T, dir string) *local.Driver {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d, err := local.New(context.Background(), local.Config{Argv: testagent.Argv(exe), Env: []string{testagent.EnvVar + "=1"},
		DataDir: dir, NATSURL: "-", AgentSecret: "s", Readiness: local.ReadyProcess, Settle: 100 * time.Millisecond, StopGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanup(d) })
	return d
}

// heartbeatDriver waits for the test agent's heartbeat over a real NATS
// connection with the node's own credentials, as `elb up` does.
func heartbeatDriver(t *testing.T) *local.Driver {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bus := testkit.NATSWith(t, natsx.ServerConfig{Listen: "127.0.0.1:0", ServicePassword: "svc", AgentSecret: "s"})
	d, err := local.New(context.Background(), local.Config{Argv: testagent.Argv(exe), Env: []string{testagent.EnvVar + "=1"},
		DataDir: t.TempDir(), NATSURL: bus.Server.ClientURL(), AgentSecret: "s", Readiness: local.ReadyHeartbeat, JS: bus.JS, StopGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanup(d) })
	return d
}

func cleanup(d *local.Driver) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nodes, _ := d.List(ctx)
	for _, n := range nodes {
		_ = d.Delete(ctx, n.ID)
	}
}

func processExists(d *local.Driver, id string) bool {
	nodes, _ := d.List(context.Background())
	for _, n := range nodes {
		if n.ID == id && n.Ready {
			return true
		}
	}
	// Also look at the process table directly, in case the state lost it.
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		st, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if strings.Contains(string(st), ") Z") {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if a == id {
				return true
			}
		}
	}
	return false
}

func TestLocalDriverContract(t *testing.T) {
	computetest.Run(t, func(t *testing.T) computetest.Harness {
		d := heartbeatDriver(t)
		return computetest.Harness{Driver: d, Exists: func(id string) bool { return processExists(d, id) }, Break: func() {}, ReadyTimeout: 10 * time.Second}
	})
}

func TestRestartedDriverAdoptsRunningNodesAndRespawnsDeadOnes(t *testing.T) {
	dir := t.TempDir()
	first := newDriver(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := first.Create(ctx, compute.Spec{NodeID: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := first.Create(ctx, compute.Spec{NodeID: "dies"})
	if err != nil {
		t.Fatal(err)
	}
	pidB, _ := strconv.Atoi(strings.TrimPrefix(b.ServerID, "pid-"))
	p, _ := os.FindProcess(pidB)
	_ = p.Kill()
	// A new driver on the same data dir (a restarted provisioner).
	second := newDriver(t, dir)
	if again, err := second.Create(ctx, compute.Spec{NodeID: "keep"}); err != nil || again.ServerID != a.ServerID || again.Address != a.Address {
		t.Fatalf("running node not adopted: %+v %v (was %+v)", again, err, a)
	}
	deadline := time.Now().Add(5 * time.Second)
	for processExists(second, "dies") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := second.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	nodes, _ := second.List(ctx)
	for _, n := range nodes {
		if !n.Ready {
			t.Fatalf("node %s not running after recover", n.ID)
		}
		if n.ID == "dies" && (n.ServerID == b.ServerID || n.Address != b.Address) {
			t.Fatalf("dead node not respawned on its address: %+v (was %+v)", n, b)
		}
	}
}

func TestArgvTemplateGetsNodeCredentials(t *testing.T) {
	d, err := local.New(context.Background(), local.Config{Argv: local.DefaultArgv("/usr/bin/elb"), DataDir: t.TempDir(), NATSURL: "nats://127.0.0.1:4222", AgentSecret: "sec"})
	if err != nil {
		t.Fatal(err)
	}
	argv, err := d.Argv(local.Vars{NodeID: "n1", Role: "tengine", Address: "127.101.0.2", NATSURL: "nats://127.0.0.1:4222", User: "agent-n1", Password: "pw", StateDir: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	want := "/usr/bin/elb agent --role tengine --node-id n1 --address 127.101.0.2 --nats nats://127.0.0.1:4222 --user agent-n1 --password pw --driver builtin --state-dir /x"
	if got := strings.Join(argv, " "); got != want {
		t.Fatalf("argv = %s\nwant  %s", got, want)
	}
	if _, err := local.New(context.Background(), local.Config{Argv: []string{"{{.Nope"}, DataDir: t.TempDir()}); err == nil {
		t.Fatal("a broken template was accepted")
	}
}
