package nginx

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/elbcloud/elb/agents/l7"
	"github.com/elbcloud/elb/agents/l7/l7test"
)

func newTestDriver(t *testing.T) *Driver {
	t.Helper()
	if !Available(DefaultBinary) {
		t.Skipf("nginx not installed at %s (Debian package nginx-light)", DefaultBinary)
	}
	d, err := New(Options{Dir: filepath.Join(t.TempDir(), "nginx"), Render: RenderOptions{WorkerProcesses: 2}, Logger: l7test.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNginxDriverPassesTheBehaviourSuite(t *testing.T) {
	l7test.Run(t, func(t *testing.T) l7.Driver { return newTestDriver(t) })
}

func TestNginxKeptRunningIsAdoptedByTheNextDriver(t *testing.T) {
	if !Available(DefaultBinary) {
		t.Skipf("nginx not installed at %s (Debian package nginx-light)", DefaultBinary)
	}
	dir := filepath.Join(t.TempDir(), "nginx")
	b := l7test.StartBackend(t, "m1")
	bind, _ := l7test.FreeBind(t)
	desired := l7.Desired{Listeners: []l7.Listener{{ID: "l1", Bind: bind, Algorithm: l7.AlgRoundRobin,
		Members:        []l7.Member{{ID: "m1", Address: b.Host, Port: b.Port, Weight: 1}},
		ConnectTimeout: time.Second, MemberTimeout: 5 * time.Second, ClientTimeout: 5 * time.Second}}}
	first, err := New(Options{Dir: dir, KeepRunning: true, Render: RenderOptions{WorkerProcesses: 1}, Logger: l7test.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Apply(context.Background(), desired); err != nil {
		t.Fatal(err)
	}
	pid := first.pid
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	c := l7test.Client()
	defer c.CloseIdleConnections()
	if code, body, _, err := l7test.Get(c, "http://"+bind+"/"); err != nil || code != 200 || body != "m1" {
		t.Fatalf("nginx stopped with the driver: %d %q %v", code, body, err)
	}
	second, err := New(Options{Dir: dir, Render: RenderOptions{WorkerProcesses: 1}, Logger: l7test.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Apply(context.Background(), desired); err != nil {
		t.Fatal(err)
	}
	if second.pid != pid {
		t.Fatalf("second driver runs pid %d, want the adopted %d", second.pid, pid)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	if isNginx(pid) {
		t.Fatalf("nginx %d still runs after Close", pid)
	}
}

func TestNginxRejectedConfigKeepsTheOldOneServing(t *testing.T) {
	d := newTestDriver(t)
	defer d.Close()
	b := l7test.StartBackend(t, "m1")
	bind, _ := l7test.FreeBind(t)
	good := l7.Listener{ID: "l1", Bind: bind, Algorithm: l7.AlgRoundRobin,
		Members:        []l7.Member{{ID: "m1", Address: b.Host, Port: b.Port, Weight: 1}},
		ConnectTimeout: time.Second, MemberTimeout: 5 * time.Second, ClientTimeout: 5 * time.Second}
	if err := d.Apply(context.Background(), l7.Desired{Listeners: []l7.Listener{good}}); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.ID, bad.Bind = "l2", "192.0.2.1:80" // TEST-NET address: not on this host, nginx -t cannot bind it
	err := d.Apply(context.Background(), l7.Desired{Listeners: []l7.Listener{good, bad}})
	if !errors.Is(err, ErrConfigTest) {
		t.Fatalf("apply of an unbindable listener: %v, want ErrConfigTest", err)
	}
	c := l7test.Client()
	defer c.CloseIdleConnections()
	if code, body, _, err := l7test.Get(c, "http://"+bind+"/"); err != nil || code != 200 || body != "m1" {
		t.Fatalf("old config stopped serving: %d %q %v", code, body, err)
	}
	// The next good apply works again.
	if err := d.Apply(context.Background(), l7.Desired{Listeners: []l7.Listener{good}}); err != nil {
		t.Fatal(err)
	}
}
