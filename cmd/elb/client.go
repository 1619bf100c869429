package main

import (
	"fmt"
	"io"
)

func cmdClient(args []string, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "elb: unknown command %q\n", args[0])
	return 2
}

func cmdAgent(_ []string, stderr io.Writer) int {
	fmt.Fprintln(stderr, "elb agent: not wired yet")
	return 2
}
