package nftables

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/elbcloud/elb/agents/l4"
	"github.com/elbcloud/elb/agents/l4/l4test"
)

var update = os.Getenv("UPDATE_GOLDEN") != ""

func needKernel(t *testing.T) {
	t.Helper()
	if why := l4test.CanNetNS(); why != "" {
		t.Skip("nftables real-kernel test: " + why)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nftables real-kernel test: nft binary missing (apt-get install nftables)")
	}
}

func TestSlotsFollowWeightsWithinBounds(t *testing.T) {
	d := func(ws ...int) []l4.Destination {
		var out []l4.Destination
		for _, w := range ws {
			out = append(out, l4.Destination{Weight: w})
		}
		return out
	}
	for _, tc := range []struct {
		in   []l4.Destination
		want string
	}{
		{d(1, 1, 1), "[1 1 1]"},
		{d(2, 4, 0), "[1 2 0]"},
		{d(100, 300), "[1 3]"},
		{d(65535, 1), "[1023 1]"},
	} {
		if got := fmt.Sprint(slots(tc.in)); got != tc.want {
			t.Errorf("slots(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func goldenState() l4.State {
	b := func(last byte, port uint16, w int) l4.Destination {
		return l4.Destination{Addr: netip.AddrFrom4([4]byte{198, 18, 10 + last, 2}), Port: port, Weight: w}
	}
	vip := netip.MustParseAddr("198.18.2.10")
	return l4.State{Services: []l4.Service{
		{VIP: vip, Port: 80, Protocol: l4.TCP, Scheduler: l4.WRR, Forward: l4.NAT,
			Destinations: []l4.Destination{b(0, 8080, 1), b(1, 8080, 2), b(2, 8080, 0)}},
		{VIP: vip, Port: 443, Protocol: l4.TCP, Scheduler: l4.SH, Persistence: 300, Forward: l4.NAT,
			Destinations: []l4.Destination{b(0, 8443, 1), b(1, 8443, 1)}},
		{VIP: vip, Port: 53, Protocol: l4.UDP, Scheduler: l4.LC, Forward: l4.NAT,
			Destinations: []l4.Destination{b(2, 5353, 3)}},
	}}
}

var handleRE = regexp.MustCompile(`\s*# handle \d+`)

// TestRulesetMatchesGolden programs a fixed state into a fresh namespace and
// compares `nft list ruleset` with testdata/ruleset.golden.
func TestRulesetMatchesGolden(t *testing.T) {
	needKernel(t)
	topo := l4test.NewTopology(t, 0)
	d, err := New(Config{NetNS: int(topo.LVS)})
	if err != nil {
		t.Skipf("nftables unavailable: %v", err)
	}
	if err := d.Apply(context.Background(), goldenState()); err != nil {
		t.Fatalf("apply: %v", err)
	}
	ns := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(topo.LVS))
	out, err := exec.Command("nsenter", "--net="+ns, "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	got := handleRE.ReplaceAllString(string(out), "")
	path := filepath.Join("testdata", "ruleset.golden")
	if update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (UPDATE_GOLDEN=1 writes it): %v", err)
	}
	if got != string(want) {
		t.Fatalf("ruleset differs from %s (UPDATE_GOLDEN=1 to accept):\n%s", path, got)
	}
	// What is read back is what was asked for.
	obs, err := d.Observed(context.Background())
	if err != nil || !l4.Equal(obs, goldenState()) {
		t.Fatalf("observed %+v, %v", obs, err)
	}
	// A stale service disappears with its chain and map.
	st := goldenState()
	st.Services = st.Services[:1]
	if err := d.Apply(context.Background(), st); err != nil {
		t.Fatalf("apply: %v", err)
	}
	out, _ = exec.Command("nsenter", "--net="+ns, "nft", "list", "ruleset").CombinedOutput()
	if strings.Contains(string(out), "443") || strings.Contains(string(out), "udp") {
		t.Fatalf("stale service left behind:\n%s", out)
	}
}

func TestNftablesDriverPassesTheBehaviourSuiteInNamespaces(t *testing.T) {
	needKernel(t)
	topo := l4test.NewTopology(t, 3)
	if _, err := New(Config{NetNS: int(topo.LVS)}); err != nil {
		t.Skipf("nftables unavailable: %v", err)
	}
	env := topo.Env()
	env.NewDriver = func(t *testing.T) l4.Driver {
		d, err := New(Config{NetNS: int(topo.LVS)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Remove() })
		return d
	}
	l4test.Run(t, env)

	// The service rules count new connections.
	d := env.NewDriver(t)
	ctx := context.Background()
	st := l4.State{Services: []l4.Service{{VIP: topo.VIP, Port: 99, Protocol: l4.TCP, Scheduler: l4.RR, Forward: l4.NAT,
		Destinations: []l4.Destination{{Addr: topo.BackendAddr[0], Port: 9999, Weight: 1}}}}}
	if err := d.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		l4test.In(topo.Client, func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(topo.VIP, 99).String(), time.Second)
			if err == nil {
				c.Close()
			}
			return nil
		})
	}
	stats, err := d.(*Driver).Stats(ctx)
	if err != nil || len(stats) != 1 || stats[0].Total.Connections != 3 {
		t.Fatalf("stats %+v, %v; want 3 connections", stats, err)
	}
}
