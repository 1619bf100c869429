package nginx

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/elbcloud/elb/agents/l7"
)

// Paths are the files of one nginx instance, all below Dir (nginx -p Dir).
type Paths struct {
	Dir string
}

// Conf is the main config file.
func (p Paths) Conf() string { return filepath.Join(p.Dir, "nginx.conf") }

// PID is the master's pid file.
func (p Paths) PID() string { return filepath.Join(p.Dir, "nginx.pid") }

// ErrorLog is nginx's error log.
func (p Paths) ErrorLog() string { return filepath.Join(p.Dir, "logs", "error.log") }

// AccessLog is the JSON access log the driver tails.
func (p Paths) AccessLog() string { return filepath.Join(p.Dir, "logs", "access.log") }

// StatusSocket is the unix socket of the stub_status server. A unix socket
// path must fit in sun_path (108 bytes with its NUL); when the prefix dir is
// too deep the socket moves to the temp dir under a name derived from the
// prefix dir, so it stays the same across agent restarts.
func (p Paths) StatusSocket() string {
	sock := filepath.Join(p.Dir, "status.sock")
	if len(sock) < maxSocketPath {
		return sock
	}
	sum := sha256.Sum256([]byte(p.Dir))
	return filepath.Join(os.TempDir(), "elb-nginx-"+hex.EncodeToString(sum[:8])+".sock")
}

const maxSocketPath = 100

// RenderOptions tune the rendered config.
type RenderOptions struct {
	// WorkerProcesses, 0 means auto.
	WorkerProcesses   int
	WorkerConnections int // default 16384
	// UpstreamKeepalive is the idle keep-alive connections per worker and
	// upstream (default 64).
	UpstreamKeepalive int
}

var (
	nameRe   = regexp.MustCompile(`[^A-Za-z0-9_]`)
	cookieRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// sanitize makes an id usable in nginx names; the index keeps names unique.
func sanitize(i int, id string) string {
	s := nameRe.ReplaceAllString(id, "_")
	if len(s) > 40 {
		s = s[:40]
	}
	return fmt.Sprintf("l%d_%s", i, s)
}

func seconds(d time.Duration) string {
	ms := d.Milliseconds()
	if ms <= 0 {
		ms = 1
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

// Render returns the nginx.conf for d. generation is served on the status
// socket so the driver can tell when a reload is live. The output is
// deterministic (golden-tested).
func Render(d l7.Desired, p Paths, o RenderOptions, generation uint64) ([]byte, error) {
	if o.WorkerConnections <= 0 {
		o.WorkerConnections = 16384
	}
	if o.UpstreamKeepalive <= 0 {
		o.UpstreamKeepalive = 64
	}
	workers := "auto"
	if o.WorkerProcesses > 0 {
		workers = strconv.Itoa(o.WorkerProcesses)
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Rendered by elb-agent (tengine role); the agent overwrites it on every change.\n")
	w("# generation %d\n", generation)
	w("daemon on;\nmaster_process on;\n")
	w("worker_processes %s;\nworker_rlimit_nofile %d;\n", workers, 4*o.WorkerConnections)
	w("pid %s;\nerror_log %s warn;\n\n", p.PID(), p.ErrorLog())
	w("events {\n    worker_connections %d;\n    multi_accept on;\n}\n\n", o.WorkerConnections)
	w("http {\n")
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		w("    %s_temp_path %s;\n", t, filepath.Join(p.Dir, "tmp", t))
	}
	w("    access_log off;\n    server_tokens off;\n    sendfile on;\n    tcp_nopush on;\n    tcp_nodelay on;\n")
	w("    keepalive_requests 10000;\n    types_hash_max_size 2048;\n    default_type application/octet-stream;\n")
	// Bodies stream through: no temp files (workers run unprivileged and may
	// not reach the agent's state dir) and no size limit, as AWS ELB.
	w("    proxy_http_version 1.1;\n    proxy_buffering on;\n    proxy_request_buffering off;\n    proxy_max_temp_file_size 0;\n")
	w("    client_max_body_size 0;\n    limit_conn_status 503;\n    limit_conn_log_level warn;\n\n")

	seen := map[string]bool{}
	for i, l := range d.Listeners {
		host, portStr, err := net.SplitHostPort(l.Bind)
		if err != nil {
			return nil, fmt.Errorf("%w: listener %s bind %q: %w", l7.ErrInvalidDesired, l.ID, l.Bind, err)
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return nil, fmt.Errorf("%w: listener %s bind %q: %w", l7.ErrInvalidDesired, l.ID, l.Bind, err)
		}
		if port, err := strconv.Atoi(portStr); err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("%w: listener %s bind %q: bad port", l7.ErrInvalidDesired, l.ID, l.Bind)
		}
		if seen[l.Bind] {
			return nil, fmt.Errorf("%w: two listeners bind %s", l7.ErrInvalidDesired, l.Bind)
		}
		seen[l.Bind] = true
		for _, c := range l.AllowedCIDRs {
			if _, err := netip.ParsePrefix(c); err != nil {
				return nil, fmt.Errorf("%w: listener %s allowed cidr: %w", l7.ErrInvalidDesired, l.ID, err)
			}
		}
		for _, m := range l.Members {
			if _, err := netip.ParseAddr(m.Address); err != nil || m.Port < 1 || m.Port > 65535 {
				return nil, fmt.Errorf("%w: listener %s member %s address %s:%d", l7.ErrInvalidDesired, l.ID, m.ID, m.Address, m.Port)
			}
		}
		if err := renderListener(&b, i, l, p, o); err != nil {
			return nil, err
		}
	}
	w("    server {\n        listen unix:%s;\n        access_log off;\n", p.StatusSocket())
	w("        location = /stub_status { stub_status; }\n")
	w("        location = /generation { return 200 \"%d\"; }\n    }\n}\n", generation)
	return []byte(b.String()), nil
}

func renderListener(b *strings.Builder, i int, l l7.Listener, p Paths, o RenderOptions) error {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	name := sanitize(i, l.ID)
	// One log format per listener: the listener id is a literal, no per-request
	// variable lookup. Every field is escaped as JSON by nginx.
	w("    # listener %s (load balancer %s, pool %s)\n", l.ID, l.LoadBalancerID, l.PoolID)
	w("    log_format elb_%s escape=json '{\"l\":\"%s\",\"ip\":\"$remote_addr\",\"u\":\"$uri\",\"s\":$status,"+
		"\"us\":\"$upstream_status\",\"uht\":\"$upstream_header_time\",\"rt\":$request_time,"+
		"\"bi\":$request_length,\"bo\":$bytes_sent,\"lc\":\"$limit_conn_status\"}';\n", name, jsonLiteral(l.ID))

	primaries := 0
	for _, m := range l.Members {
		if !m.Backup {
			primaries++
		}
	}
	hashKey := ""
	switch {
	case l.StickyType == l7.StickyHTTPCookie:
		// nginx-light has no sticky module: hash a cookie we insert. A request
		// without the cookie hashes a fresh $request_id (spread like round
		// robin) and gets that id as its cookie, so its next requests land on
		// the same member while the member set is unchanged (consistent hash).
		hashKey = "$elb_sk_" + name
		w("    map $cookie_%s $elb_sk_%s {\n        \"\" $request_id;\n        default $cookie_%s;\n    }\n", l7.InsertCookieName, name, l7.InsertCookieName)
		w("    map $cookie_%s $elb_sc_%s {\n        \"\" \"%s=$request_id; Path=/; HttpOnly\";\n        default \"\";\n    }\n", l7.InsertCookieName, name, l7.InsertCookieName)
	case l.StickyType == l7.StickyAppCookie:
		if !cookieRe.MatchString(l.CookieName) {
			return fmt.Errorf("%w: listener %s: cookie name %q", l7.ErrInvalidDesired, l.ID, l.CookieName)
		}
		hashKey = "$elb_sk_" + name
		w("    map $http_cookie $elb_sk_%s {\n        \"~(?:^|;\\s*)%s=(?<elbv>[^;]+)\" $elbv;\n        default $request_id;\n    }\n", name, regexp.QuoteMeta(l.CookieName))
	case l.StickyType == l7.StickySourceIP || l.Algorithm == l7.AlgSourceIP:
		// ip_hash would hash only the first three octets of IPv4 addresses.
		hashKey = "$remote_addr"
	}
	if len(l.Members) > 0 {
		w("    upstream elb_%s {\n", name)
		switch {
		case hashKey != "":
			w("        hash %s consistent;\n", hashKey)
		case l.Algorithm == l7.AlgLeastConn:
			w("        least_conn;\n")
		}
		for _, m := range l.Members {
			if m.Backup {
				switch {
				case primaries == 0:
					m.Backup = false // nginx needs a non-backup server
				case hashKey != "":
					continue // backup is not allowed with hash
				}
			}
			weight := m.Weight
			if weight < 1 {
				weight = 1
			}
			w("        server %s weight=%d max_fails=1 fail_timeout=10s", net.JoinHostPort(m.Address, strconv.Itoa(m.Port)), weight)
			if m.Backup {
				w(" backup")
			}
			w("; # member %s\n", m.ID)
		}
		w("        keepalive %d;\n        keepalive_requests 10000;\n        keepalive_timeout 60s;\n    }\n", o.UpstreamKeepalive)
	}
	if l.ConnectionLimit > 0 {
		w("    limit_conn_zone $server_port zone=elb_conn_%s:1m;\n", name)
	}
	w("    server {\n        listen %s backlog=4096;\n", l.Bind)
	w("        access_log %s elb_%s buffer=64k flush=1s;\n", p.AccessLog(), name)
	w("        client_header_timeout %s;\n        client_body_timeout %s;\n        send_timeout %s;\n        keepalive_timeout %s;\n",
		seconds(l.ClientTimeout), seconds(l.ClientTimeout), seconds(l.ClientTimeout), seconds(l.ClientTimeout))
	for _, c := range l.AllowedCIDRs {
		w("        allow %s;\n", c)
	}
	if len(l.AllowedCIDRs) > 0 {
		w("        deny all;\n")
	}
	if l.ConnectionLimit > 0 {
		w("        limit_conn elb_conn_%s %d;\n", name, l.ConnectionLimit)
	}
	w("        location / {\n")
	if len(l.Members) == 0 {
		w("            return 503;\n        }\n    }\n\n")
		return nil
	}
	w("            proxy_pass http://elb_%s;\n", name)
	w("            proxy_set_header Host $http_host;\n            proxy_set_header Connection \"\";\n")
	w("            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n")
	if l.XForwardedPort {
		w("            proxy_set_header X-Forwarded-Port $server_port;\n")
	}
	if l.XForwardedProto {
		w("            proxy_set_header X-Forwarded-Proto $scheme;\n")
	}
	w("            proxy_connect_timeout %s;\n            proxy_read_timeout %s;\n            proxy_send_timeout %s;\n",
		seconds(l.ConnectTimeout), seconds(l.MemberTimeout), seconds(l.MemberTimeout))
	w("            proxy_next_upstream error timeout;\n            proxy_next_upstream_tries 3;\n")
	if l.StickyType == l7.StickyHTTPCookie {
		w("            add_header Set-Cookie $elb_sc_%s;\n", name)
	}
	w("        }\n    }\n\n")
	return nil
}

// jsonLiteral escapes s for a JSON string inside a single-quoted nginx
// string.
func jsonLiteral(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\'' || r == '$' || r < 0x20:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
