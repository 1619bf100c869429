// Package chtest runs a real ClickHouse server for tests: Debian's
// clickhouse-server started as a child process on free loopback ports with a
// config written into a temp dir, or an external server named by the
// CLICKHOUSE_DSN environment variable (each test then gets its own database).
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// Binaries tried, in order, to run a server.
var binaries = [][]string{
	{"/usr/bin/clickhouse", "server"},
	{"/usr/sbin/clickhouse-server"},
	{"/usr/bin/clickhouse-server"},
}

// Server is a ClickHouse server for one test.
type Server struct {
	// DSN points at a fresh database of the server.
	DSN string
	// External is set when the server comes from CLICKHOUSE_DSN (Stop and
	// Start are then not available).
	External bool

	t        testing.TB
	bin      []string
	dir      string
	tcpPort  int
	cmd      *exec.Cmd
	waitDone chan struct{}
}

// Start returns a running server, skipping the test when neither
// CLICKHOUSE_DSN nor a clickhouse-server binary is available. The server is
// stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	db := "elb_test_" + randHex(6)
	if dsn := os.Getenv("CLICKHOUSE_DSN"); dsn != "" {
		s := &Server{External: true, t: t, DSN: withDatabase(dsn, db)}
		t.Cleanup(func() { dropDatabase(dsn, db) })
		return s
	}
	var bin []string
	for _, b := range binaries {
		if _, err := os.Stat(b[0]); err == nil {
			bin = b
			break
		}
	}
	if bin == nil {
		t.Skip("ClickHouse not available: no clickhouse-server binary (install Debian's clickhouse-server) and CLICKHOUSE_DSN not set")
	}
	dir := t.TempDir()
	ports := freePorts(t, 3)
	s := &Server{t: t, bin: bin, dir: dir, tcpPort: ports[0]}
	if err := writeConfig(dir, ports); err != nil {
		t.Fatal(err)
	}
	s.DSN = fmt.Sprintf("clickhouse://127.0.0.1:%d/%s?dial_timeout=2s", s.tcpPort, db)
	t.Cleanup(s.kill)
	s.Restart()
	return s
}

// Addr is the native protocol address of a local server.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.tcpPort) }

// Stop kills the server (SIGKILL, like a crash) and waits for it to exit.
func (s *Server) Stop() {
	s.t.Helper()
	if s.External {
		s.t.Fatal("chtest: cannot stop an external server")
	}
	s.kill()
}

func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.waitDone
	s.cmd = nil
}

// Restart starts the server (again) on the same data dir and ports and waits
// until it answers queries.
func (s *Server) Restart() {
	s.t.Helper()
	if s.External {
		s.t.Fatal("chtest: cannot start an external server")
	}
	args := append(append([]string{}, s.bin[1:]...), "--config-file="+filepath.Join(s.dir, "config.xml"))
	cmd := exec.Command(s.bin[0], args...)
	out, err := os.OpenFile(filepath.Join(s.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("chtest: start %s: %v", s.bin[0], err)
	}
	s.cmd = cmd
	s.waitDone = make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.waitDone) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := ping(s.Addr())
		if err == nil {
			return
		}
		select {
		case <-s.waitDone:
			log, _ := os.ReadFile(filepath.Join(s.dir, "err.log"))
			s.cmd = nil
			s.t.Fatalf("chtest: clickhouse-server exited during start-up: %s", tail(string(log), 2000))
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("chtest: clickhouse-server not ready after 60 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ping(addr string) error {
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return conn.Ping(ctx)
}

func writeConfig(dir string, ports []int) error {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%[1]s/server.log</log><errorlog>%[1]s/err.log</errorlog><size>10M</size><count>1</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]d</tcp_port>
  <http_port>%[3]d</http_port>
  <interserver_http_port>%[4]d</interserver_http_port>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
`, dir, ports[0], ports[1], ports[2])
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644)
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

func withDatabase(dsn, db string) string {
	opts, err := ch.ParseDSN(dsn)
	if err != nil || len(opts.Addr) == 0 {
		return dsn
	}
	q := ""
	if i := strings.IndexByte(dsn, '?'); i >= 0 {
		q = dsn[i:]
	}
	auth := ""
	if opts.Auth.Username != "" {
		auth = opts.Auth.Username
		if opts.Auth.Password != "" {
			auth += ":" + opts.Auth.Password
		}
		auth += "@"
	}
	return fmt.Sprintf("clickhouse://%s%s/%s%s", auth, strings.Join(opts.Addr, ","), db, q)
}

func dropDatabase(dsn, db string) {
	opts, err := ch.ParseDSN(dsn)
	if err != nil {
		return
	}
	opts.Auth.Database = ""
	conn, err := ch.Open(opts)
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`")
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("chtest: no randomness"))
	}
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
