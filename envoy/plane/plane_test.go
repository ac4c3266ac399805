package plane

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flexgw/flexgw/envoy"
	"github.com/flexgw/flexgw/envoy/supervisor"
	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/snapshot"
)

// fakeEnvoy is the supervisor's stand-in Envoy (Envoy cannot be installed
// here), which also plays Envoy's ADS client when FAKE_ENVOY_ADS is set.
var fakeEnvoy string

func TestMain(m *testing.M) { testutil.FakeEnvoyMain(m, &fakeEnvoy) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func config(t *testing.T, dir string, port int) *ir.Snapshot {
	t.Helper()
	y := fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: orders
spec:
  address: http://127.0.0.1:18089/orders
  services:
    orders:
      address: http://127.0.0.1:%d
`, port)
	if err := os.WriteFile(filepath.Join(dir, "orders.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := snapshot.LoadDir(dir, uint64(port))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func acked(p *Plane, node, typ, version string) bool {
	for _, n := range p.Status().XDS.Nodes {
		if n.ID == node && n.Acked["type.googleapis.com/envoy.config."+typ] == version {
			return true
		}
	}
	return false
}

// TestEnvoyModeEndToEnd: the plane serves ADS, starts the stand-in Envoy
// with the real bootstrap, the stand-in fetches and ACKs listeners and
// clusters over ADS and becomes ready, a second Apply reaches it, and
// Shutdown drains it before stopping it.
func TestEnvoyModeEndToEnd(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events")
	t.Setenv("FAKE_ENVOY_EVENTS", events)
	t.Setenv("FAKE_ENVOY_ADS", "1")
	p, err := New(Options{
		Mode: ModeEnvoy, XDSAddress: "127.0.0.1:0", EnvoyPath: fakeEnvoy,
		Bootstrap: envoy.BootstrapOptions{NodeID: "e2e-envoy", AdminAddress: testutil.FreeAddr(t)},
		Logger:    slog.New(slog.DiscardHandler),
		Supervisor: func(o *supervisor.Options) {
			o.PollInterval = 10 * time.Millisecond
			o.MinBackoff = 20 * time.Millisecond
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	dir := t.TempDir()
	if err := p.Apply(config(t, dir, 9001)); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := p.WaitReady(rctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ACKs of version 1", func() bool {
		return acked(p, "e2e-envoy", "listener.v3.Listener", "1") && acked(p, "e2e-envoy", "cluster.v3.Cluster", "1")
	})
	if err := p.Apply(config(t, dir, 9002)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ACK of version 2", func() bool { return acked(p, "e2e-envoy", "cluster.v3.Cluster", "2") })

	st := p.Status()
	if st.Mode != ModeEnvoy || st.Envoy == nil || !st.Envoy.Ready || st.XDS.SnapshotVersion != 9002 {
		t.Errorf("status = %+v", st)
	}
	reg := prometheus.NewPedanticRegistry()
	for _, c := range p.Collectors() {
		reg.MustRegister(c)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			names[mf.GetName()] += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if names["flexgw_xds_pushes_total"] != 2 || names["flexgw_envoy_stats_up"] != 1 {
		t.Errorf("metrics = %v", names)
	}

	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(events)
	ev := string(b)
	drain, term := strings.Index(ev, "drain"), strings.Index(ev, "sigterm")
	if drain < 0 || term < drain || !strings.Contains(ev, "ack Cluster 2") {
		t.Errorf("events:\n%s", ev)
	}
}

func TestXDSModeOnUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "xds.sock")
	p, err := New(Options{Mode: ModeXDS, XDSAddress: sock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("socket: %v", err)
	}
	if err := p.Apply(config(t, t.TempDir(), 9001)); err != nil {
		t.Fatal(err)
	}
	if st := p.Status(); st.Envoy != nil || st.XDS.Version != "1" || len(p.Collectors()) != 1 {
		t.Errorf("status = %+v", st)
	}
	if err := p.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadModes(t *testing.T) {
	if _, err := New(Options{Mode: "auto"}); err == nil {
		t.Error("mode auto accepted (the agent resolves auto with envoy.Detect)")
	}
	if _, err := New(Options{Mode: ModeEnvoy}); err == nil || !strings.Contains(err.Error(), "envoy binary") {
		t.Errorf("envoy mode without a binary: %v", err)
	}
}
