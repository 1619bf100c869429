// Command elb-l4 programs one L4 virtual service with a chosen driver and
// keeps it until interrupted: a way to run an L4 driver alone (benchmarks,
// debugging a node).
//
//	elb-l4 -driver userspace -vip 127.0.0.50 -port 8080 -dests 127.0.0.1:8081:1,127.0.0.1:8082:2 -sched wrr
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/elbcloud/elb/agents/l4"
	"github.com/elbcloud/elb/agents/l4/auto"
	"github.com/elbcloud/elb/agents/l4/nftables"
	"github.com/elbcloud/elb/agents/l4/userspace"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "elb-l4:", err)
		os.Exit(1)
	}
}

func parseDests(s string) ([]l4.Destination, error) {
	var out []l4.Destination
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		w := 1
		ap := part
		if i := strings.LastIndex(part, ":"); i > 0 && strings.Count(part, ":") == 2 {
			n, err := strconv.Atoi(part[i+1:])
			if err != nil {
				return nil, fmt.Errorf("dest %q: weight: %w", part, err)
			}
			w, ap = n, part[:i]
		}
		a, err := netip.ParseAddrPort(ap)
		if err != nil {
			return nil, fmt.Errorf("dest %q: %w", part, err)
		}
		out = append(out, l4.Destination{Addr: a.Addr(), Port: a.Port(), Weight: w})
	}
	return out, nil
}

func run() error {
	driver := flag.String("driver", "auto", "ipvs, nftables, userspace or auto")
	vip := flag.String("vip", "127.0.0.50", "virtual IP")
	port := flag.Uint("port", 8080, "virtual port")
	proto := flag.String("proto", "tcp", "tcp or udp")
	sched := flag.String("sched", "rr", "scheduler")
	fwd := flag.String("forward", "nat", "dr, nat or tun (ipvs)")
	dests := flag.String("dests", "", "destinations addr:port[:weight],...")
	vipIf := flag.String("vip-interface", "", "ipvs: interface for the VIP")
	cleanup := flag.Bool("cleanup", true, "nftables: remove the table on exit")
	copyMode := flag.String("copy", "", "userspace: auto (default), splice or buffer")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file until exit")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	a, err := netip.ParseAddr(*vip)
	if err != nil {
		return fmt.Errorf("vip: %w", err)
	}
	ds, err := parseDests(*dests)
	if err != nil {
		return err
	}
	switch *copyMode {
	case "", "auto", userspace.CopySplice, userspace.CopyBuffer:
	default:
		return fmt.Errorf("copy %q: want auto, splice or buffer", *copyMode)
	}
	if *port == 0 || *port > 65535 {
		return fmt.Errorf("port %d out of range", *port)
	}
	st := l4.State{Services: []l4.Service{{VIP: a, Port: uint16(*port), Protocol: l4.Protocol(*proto), Scheduler: *sched,
		Forward: l4.Forward(*fwd), Destinations: ds}}}
	d, err := auto.Open(auto.Config{Driver: *driver, VIPInterface: *vipIf, Copy: strings.TrimPrefix(*copyMode, "auto"), Log: log})
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := d.Apply(ctx, st); err != nil {
		return err
	}
	log.Info("serving", "driver", d.Name(), "service", st.Services[0].Key().String(), "destinations", len(ds))
	fmt.Println("READY")
	<-ctx.Done()
	if n, ok := d.(*nftables.Driver); ok && *cleanup {
		return n.Remove()
	}
	return nil
}
