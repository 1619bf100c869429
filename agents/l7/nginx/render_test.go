package nginx

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elbcloud/elb/agents/l7"
	"github.com/elbcloud/elb/agents/l7/l7test"
)

var update = flag.Bool("update", false, "rewrite golden files")

func goldenDesired() l7.Desired {
	base := func(id, bind string) l7.Listener {
		return l7.Listener{ID: id, LoadBalancerID: "lb-1", Bind: bind, PoolID: "pool-" + id, Algorithm: l7.AlgRoundRobin,
			ConnectTimeout: 2 * time.Second, MemberTimeout: 30 * time.Second, ClientTimeout: 60 * time.Second, DrainTimeout: 10 * time.Second,
			Members: []l7.Member{
				{ID: "m-a", Address: "10.0.0.11", Port: 8080, Weight: 1},
				{ID: "m-b", Address: "10.0.0.12", Port: 8080, Weight: 3},
				{ID: "m-c", Address: "fd00::13", Port: 8080, Weight: 1, Backup: true},
			}}
	}
	rr := base("rr.listener", "192.0.2.10:80")
	rr.AllowedCIDRs = []string{"10.0.0.0/8", "192.168.1.0/24"}
	rr.ConnectionLimit = 1000
	rr.XForwardedPort, rr.XForwardedProto = true, true
	lc := base("lc", "192.0.2.10:81")
	lc.Algorithm = l7.AlgLeastConn
	ip := base("ip", "192.0.2.10:82")
	ip.Algorithm = l7.AlgSourceIP
	ck := base("cookie", "192.0.2.10:83")
	ck.StickyType = l7.StickyHTTPCookie
	app := base("app", "192.0.2.10:84")
	app.StickyType, app.CookieName = l7.StickyAppCookie, "JSESSIONID"
	empty := base("empty", "192.0.2.10:85")
	empty.Members = nil
	return l7.Desired{Listeners: []l7.Listener{rr, lc, ip, ck, app, empty}}
}

func TestRenderMatchesGoldenConfig(t *testing.T) {
	got, err := Render(goldenDesired(), Paths{Dir: "/var/lib/elb-agent/nginx"}, RenderOptions{}, 42)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "nginx.conf.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("rendered config differs from %s (run with -update and review the diff):\n%s", golden, got)
	}
}

func TestRenderedGoldenConfigPassesNginxTest(t *testing.T) {
	if !Available(DefaultBinary) {
		t.Skipf("nginx not installed at %s (Debian package nginx-light)", DefaultBinary)
	}
	dir := t.TempDir()
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// nginx -t binds the listen sockets: use free loopback ports.
	d := goldenDesired()
	for i := range d.Listeners {
		d.Listeners[i].Bind, _ = l7test.FreeBind(t)
	}
	conf, err := Render(d, Paths{Dir: dir}, RenderOptions{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, DefaultBinary, "-t", "-q", "-p", dir+"/", "-e", filepath.Join(dir, "logs", "error.log"), "-c", path).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v: %s", err, out)
	}
}

func TestRenderRejectsBadInput(t *testing.T) {
	cases := map[string]func(*l7.Listener){
		"bind without port":   func(l *l7.Listener) { l.Bind = "127.0.0.1" },
		"bind host not an ip": func(l *l7.Listener) { l.Bind = "example.com:80" },
		"bad cidr":            func(l *l7.Listener) { l.AllowedCIDRs = []string{"10.0.0.0/33"} },
		"cookie injection":    func(l *l7.Listener) { l.StickyType, l.CookieName = l7.StickyAppCookie, `x"; }` },
		"bad member":          func(l *l7.Listener) { l.Members[0].Address = "not-an-ip" },
	}
	for name, mutate := range cases {
		d := goldenDesired()
		mutate(&d.Listeners[0])
		if _, err := Render(d, Paths{Dir: "/x"}, RenderOptions{}, 1); !errors.Is(err, l7.ErrInvalidDesired) {
			t.Errorf("%s: err %v, want ErrInvalidDesired", name, err)
		}
	}
}

func TestParseLineClassifiesUpstreamAttempts(t *testing.T) {
	cases := []struct {
		line                 string
		upstream, connErrors int
		spill                bool
	}{
		{`{"l":"l1","ip":"1.2.3.4","u":"/a","s":200,"us":"200","uht":"0.001","rt":0.002,"bi":80,"bo":200,"lc":""}`, 200, 0, false},
		{`{"l":"l1","ip":"1.2.3.4","u":"/a","s":200,"us":"502, 200","uht":"-, 0.001","rt":0.002,"bi":80,"bo":200,"lc":""}`, 200, 1, false},
		{`{"l":"l1","ip":"1.2.3.4","u":"/a","s":502,"us":"502, 502","uht":"-, -","rt":0.002,"bi":80,"bo":200,"lc":""}`, 0, 2, false},
		{`{"l":"l1","ip":"1.2.3.4","u":"/a","s":503,"us":"","uht":"","rt":0,"bi":80,"bo":200,"lc":"REJECTED"}`, 0, 0, true},
		{`{"l":"l1","ip":"1.2.3.4","u":"/a","s":404,"us":"404","uht":"0.003","rt":0.004,"bi":80,"bo":200,"lc":""}`, 404, 0, false},
	}
	for _, c := range cases {
		r, err := parseLine([]byte(c.line))
		if err != nil {
			t.Fatal(err)
		}
		if r.UpstreamStatus != c.upstream || r.ConnectErrors != c.connErrors || r.Spillover != c.spill || r.Listener != "l1" {
			t.Errorf("%s: got %+v", c.line, r)
		}
	}
	if _, err := parseLine([]byte("not json")); err == nil {
		t.Error("garbage line parsed")
	}
	if !strings.Contains(jsonLiteral(`a"b'$`), `\"`) {
		t.Error("jsonLiteral does not escape quotes")
	}
}

func TestStatusSocketFitsInSunPath(t *testing.T) {
	short := Paths{Dir: "/var/lib/elb/nginx"}
	if got := short.StatusSocket(); got != "/var/lib/elb/nginx/status.sock" {
		t.Fatalf("short dir: %s", got)
	}
	deep := Paths{Dir: "/tmp/" + strings.Repeat("d", 120) + "/nginx"}
	got := deep.StatusSocket()
	if len(got) >= maxSocketPath || got != deep.StatusSocket() {
		t.Fatalf("deep dir: %q (len %d)", got, len(got))
	}
}
