package envoy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"github.com/flexgw/flexgw/internal/testutil"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"

	// Register the extension types the bootstrap's Any fields name.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// parseBootstrap reads the YAML back as Envoy would: YAML → JSON → proto.
func parseBootstrap(t *testing.T, y []byte) *bootstrapv3.Bootstrap {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(j, b); err != nil {
		t.Fatalf("bootstrap does not parse as envoy.config.bootstrap.v3.Bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBootstrapGolden(t *testing.T) {
	cases := map[string]BootstrapOptions{
		"bootstrap-tcp":  {NodeID: "gw-1", XDSAddress: "127.0.0.1:18000"},
		"bootstrap-unix": {NodeID: "gw-2", Cluster: "edge", XDSAddress: "/run/flexgw/xds.sock", AdminAddress: "127.0.0.1:19901", MaxHeapBytes: 512 << 20, MaxDownstreamConnections: 1000},
		"bootstrap-dns":  {NodeID: "gw-3", XDSAddress: "flexgw-agent.svc:18000"},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			y, err := Bootstrap(opts)
			if err != nil {
				t.Fatal(err)
			}
			b := parseBootstrap(t, y)
			if b.Node.Id != opts.NodeID {
				t.Errorf("node id %q", b.Node.Id)
			}
			testutil.Golden(t, filepath.Join("testdata", name+".yaml"), y)
		})
	}
}

func TestBootstrapDefaultsAndErrors(t *testing.T) {
	y, err := Bootstrap(BootstrapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := parseBootstrap(t, y)
	host, _ := os.Hostname()
	if b.Node.Id != host || b.Node.Cluster != DefaultCluster {
		t.Errorf("node = %v", b.Node)
	}
	if got := b.Admin.Address.GetSocketAddress(); got.Address != "127.0.0.1" || got.GetPortValue() != 9901 {
		t.Errorf("admin = %v", got)
	}
	_, err = Bootstrap(BootstrapOptions{NodeID: "x", XDSAddress: "no-port"})
	if err == nil || !strings.Contains(err.Error(), `xds address "no-port"`) {
		t.Errorf("bad xds address: %v", err)
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "envoy")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if p, why, ok := Detect(bin); !ok || p != bin || !strings.Contains(why, "--envoy-path") {
		t.Errorf("Detect(flag) = %q %q %v", p, why, ok)
	}
	if _, why, ok := Detect(notExec); ok || !strings.Contains(why, "not executable") {
		t.Errorf("Detect(non-executable) = %q %v", why, ok)
	}
	t.Setenv("PATH", dir)
	if p, why, ok := Detect(""); !ok || p != bin || !strings.Contains(why, "PATH") {
		t.Errorf("Detect on PATH = %q %q %v", p, why, ok)
	}
	t.Setenv("PATH", t.TempDir())
	if _, why, ok := Detect(""); ok || !strings.Contains(why, "built-in") {
		t.Errorf("Detect without envoy = %q %v", why, ok)
	}
}
