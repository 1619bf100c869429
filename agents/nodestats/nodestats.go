// Package nodestats reads node metrics from /proc: CPU and memory
// utilisation, network bytes in/out and TCP connection state counts.
package nodestats

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/elbcloud/elb/events"
)

// Collector turns /proc readings into sample points. Counters (CPU, network)
// are reported as the difference to the previous call; the first call only
// primes them. Not safe for concurrent use.
type Collector struct {
	nodeID string
	proc   string

	primed          bool
	cpuBusy, cpuAll uint64
	netIn, netOut   uint64
}

// New returns a collector reading the real /proc.
func New(nodeID string) *Collector { return newCollector(nodeID, "/proc") }

func newCollector(nodeID, proc string) *Collector {
	return &Collector{nodeID: nodeID, proc: proc}
}

// Collect returns the node's points; unreadable files are skipped.
func (c *Collector) Collect(_ time.Time) []events.SamplePoint {
	dims := map[string]string{events.DimNode: c.nodeID}
	var pts []events.SamplePoint
	gauge := func(metric, unit string, v float64) {
		pts = append(pts, events.SamplePoint{Metric: metric, Unit: unit, Dimensions: dims, Count: 1, Sum: v, Min: v, Max: v})
	}
	busy, all, cpuErr := readCPU(filepath.Join(c.proc, "stat"))
	in, out, netErr := readNet(filepath.Join(c.proc, "net/dev"))
	if c.primed {
		if cpuErr == nil && all > c.cpuAll {
			gauge(events.MetricNodeCPUUtilization, "Percent", 100*float64(busy-c.cpuBusy)/float64(all-c.cpuAll))
		}
		if netErr == nil && in >= c.netIn && out >= c.netOut {
			gauge(events.MetricNodeNetworkIn, "Bytes", float64(in-c.netIn))
			gauge(events.MetricNodeNetworkOut, "Bytes", float64(out-c.netOut))
		}
	}
	if cpuErr == nil {
		c.cpuBusy, c.cpuAll = busy, all
	}
	if netErr == nil {
		c.netIn, c.netOut = in, out
	}
	c.primed = true
	if mem, err := readMem(filepath.Join(c.proc, "meminfo")); err == nil {
		gauge(events.MetricNodeMemoryUtilization, "Percent", mem)
	}
	states := map[string]int{}
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		_ = readTCPStates(filepath.Join(c.proc, f), states)
	}
	for _, s := range []struct{ metric, hex string }{
		{events.MetricNodeTCPEstablished, "01"},
		{events.MetricNodeTCPSynRecv, "03"},
		{events.MetricNodeTCPFinWait2, "05"},
		{events.MetricNodeTCPTimeWait, "06"},
		{events.MetricNodeTCPCloseWait, "08"},
	} {
		gauge(s.metric, "Count", float64(states[s.hex]))
	}
	return pts
}

// readCPU returns busy and total jiffies from the aggregate cpu line.
func readCPU(path string) (busy, all uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("%s: no cpu line", path)
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", path, err)
		}
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		all += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, all, nil
}

func readMem(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var total, avail float64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "MemTotal:":
			total = v
		case "MemAvailable:":
			avail = v
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("%s: no MemTotal", path)
	}
	return 100 * (total - avail) / total, nil
}

// readNet sums received and transmitted bytes over all interfaces but lo.
func readNet(path string) (in, out uint64, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		rx, err1 := strconv.ParseUint(f[0], 10, 64)
		tx, err2 := strconv.ParseUint(f[8], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		in += rx
		out += tx
	}
	return in, out, sc.Err()
}

// readTCPStates counts sockets by their hex state code (/proc/net/tcp "st").
func readTCPStates(path string, counts map[string]int) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 3 {
			counts[f[3]]++
		}
	}
	return sc.Err()
}
