package main

import (
	"fmt"
	"io"
)

// TEMPORARY until the tui and envoy packages land.
func cmdTop(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "flexgw top: not built yet")
	return 1
}

func cmdEnvoy(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "flexgw envoy: not built yet")
	return 1
}
