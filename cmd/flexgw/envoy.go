package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/flexgw/flexgw/agent"
	"github.com/flexgw/flexgw/envoy"
)

func cmdEnvoy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "bootstrap" {
		fmt.Fprintln(stderr, "usage: flexgw envoy bootstrap [--config DIR] [--xds-address ADDR] [--node-id ID]")
		return 2
	}
	fs := flag.NewFlagSet("envoy bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o envoy.BootstrapOptions
	configDir := fs.String("config", "", "config directory to validate first (optional)")
	fs.StringVar(&o.XDSAddress, "xds-address", "127.0.0.1:18000", "the agent's ADS address (host:port or unix socket path)")
	fs.StringVar(&o.NodeID, "node-id", "", "Envoy node id (default: hostname)")
	fs.StringVar(&o.Cluster, "cluster", "", "Envoy node cluster (default: flexgw)")
	fs.StringVar(&o.AdminAddress, "envoy-admin", "", "Envoy admin address (default: 127.0.0.1:9901)")
	fs.Uint64Var(&o.MaxHeapBytes, "max-heap-bytes", 0, "overload manager heap budget (default: the bootstrap's)")
	fs.Uint64Var(&o.MaxDownstreamConnections, "max-connections", 0, "downstream connection limit (default: the bootstrap's)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *configDir != "" {
		if _, err := agent.Compile(*configDir, 1); err != nil {
			fmt.Fprintf(stderr, "flexgw envoy bootstrap: %s: %v\n", *configDir, err)
			return 1
		}
	}
	b, err := envoy.Bootstrap(o)
	if err != nil {
		fmt.Fprintln(stderr, "flexgw envoy bootstrap:", err)
		return 1
	}
	_, _ = stdout.Write(b)
	return 0
}
