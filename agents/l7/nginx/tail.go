package nginx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/elbcloud/elb/agents/l7"
)

// logLine is one access log record (see log_format in render.go).
type logLine struct {
	L   string  `json:"l"`
	IP  string  `json:"ip"`
	U   string  `json:"u"`
	S   int     `json:"s"`
	US  string  `json:"us"`
	UHT string  `json:"uht"`
	RT  float64 `json:"rt"`
	BI  int64   `json:"bi"`
	BO  int64   `json:"bo"`
	LC  string  `json:"lc"`
}

const maxURL = 256

// parseLine turns one JSON line into a request record.
func parseLine(b []byte) (l7.Request, error) {
	var ll logLine
	if err := json.Unmarshal(b, &ll); err != nil {
		return l7.Request{}, err
	}
	r := l7.Request{
		Listener: ll.L, ClientIP: ll.IP, URL: ll.U, Status: ll.S,
		Duration: time.Duration(ll.RT * float64(time.Second)), BytesIn: ll.BI, BytesOut: ll.BO,
		Spillover: ll.LC == "REJECTED",
	}
	if len(r.URL) > maxURL {
		r.URL = r.URL[:maxURL]
	}
	// $upstream_status and $upstream_header_time list every attempt,
	// separated by ", " (and " : " between upstream groups). An attempt with
	// no header time got no response: a connection error or timeout.
	statuses := splitAttempts(ll.US)
	headers := splitAttempts(ll.UHT)
	for i, st := range statuses {
		responded := i < len(headers) && headers[i] != "-"
		if !responded {
			r.ConnectErrors++
			continue
		}
		if i == len(statuses)-1 {
			r.UpstreamStatus, _ = strconv.Atoi(st)
		}
	}
	return r, nil
}

func splitAttempts(s string) []string {
	if s == "" || s == "-" {
		return nil
	}
	s = strings.ReplaceAll(s, " : ", ", ")
	return strings.Split(s, ", ")
}

// tail follows the access log: it reads new lines every 250 ms and rotates
// the file (rename + SIGUSR1, nginx reopens) beyond MaxAccessLogBytes.
func (d *Driver) tail() {
	defer close(d.tailDone)
	path := d.paths.AccessLog()
	var f *os.File
	var off int64
	var partial []byte
	buf := make([]byte, 256<<10)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		select {
		case <-d.stopTail:
			return
		case <-t.C:
		}
		if f == nil {
			var err error
			if f, err = os.Open(path); err != nil {
				continue
			}
			off, partial = 0, nil
		}
		if st, err := f.Stat(); err == nil && st.Size() < off {
			off, partial = 0, nil // truncated
		}
		for {
			n, err := f.ReadAt(buf, off)
			off += int64(n)
			partial = d.consume(append(partial, buf[:n]...))
			if err != nil || n < len(buf) {
				if err != nil && !errors.Is(err, io.EOF) {
					d.log.Warn("read access log", "err", err)
				}
				break
			}
		}
		if off > d.opts.MaxAccessLogBytes {
			d.rotate(path)
			f.Close()
			f = nil
		}
	}
}

// consume records every complete line and returns the rest.
func (d *Driver) consume(b []byte) []byte {
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(b) > 1<<20 { // a broken line: drop it
				return nil
			}
			return append([]byte(nil), b...)
		}
		if r, err := parseAccessLine(b[:i]); err == nil {
			d.acc.Record(r)
		}
		b = b[i+1:]
	}
}

// rotate renames the log and asks nginx to reopen it. Lines a worker writes
// to the old file after the agent's last read are lost (bounded by the 64 KiB
// log buffer per worker).
func (d *Driver) rotate(path string) {
	old := path + ".1"
	_ = os.Remove(old)
	if err := os.Rename(path, old); err != nil {
		return
	}
	d.mu.Lock()
	pid := d.pid
	d.mu.Unlock()
	if pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGUSR1)
	}
}
