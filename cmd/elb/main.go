// Command elb is ELB's single binary: `elb up` runs the whole system in one
// process, `elb agent` runs a data-plane agent, and every other subcommand is
// the API client (see `elb help`).
package main

import (
	"fmt"
	"io"
	"os"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "up":
		return cmdUp(args[1:], stdout, stderr)
	case "agent":
		return cmdAgent(args[1:], stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "elb", version)
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	return cmdClient(args, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `elb — elastic load balancing

  elb up [flags]              run every service in one process (embedded NATS)
  elb agent --role ROLE ...   run a data-plane agent (tengine or lvs)
  elb loadbalancer|listener|pool|member|healthmonitor create|list|show|update|delete ...
  elb events [filters]        the audit log
  elb version

Run "elb up -h" or "elb loadbalancer -h" for flags.
`)
}
