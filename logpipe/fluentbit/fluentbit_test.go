package fluentbit

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/logpipe/fluentbit/flbtest"
)

func TestMain(m *testing.M) { flbtest.Main(m) }

// liveConfig is the config the agent renders, pointed at temp dirs, the
// plugin `make plugin` builds and a HEC stand-in.
func liveConfig(t *testing.T, hecURL string) Config {
	t.Helper()
	dir := t.TempDir()
	return Config{
		AccessLogPath: filepath.Join(dir, "access.log"),
		StateDir:      filepath.Join(dir, "state"),
		PluginPath:    flbtest.Plugin(t),
		QueueDir:      filepath.Join(dir, "queue"),
		GatewayID:     "gw-live",
		Logging: &ir.Logging{Outputs: []ir.LogOutput{{Name: "splunk", Type: "splunk",
			Parameters: map[string]string{"endpoint": hecURL, "splunk_token": "live-tok"}}}},
	}
}

func appendLines(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// The config the agent renders runs in a real Fluent Bit under the
// Supervisor: lines appended to the access log reach Splunk once each.
func TestRenderedConfigRunsInRealFluentBit(t *testing.T) {
	bin := flbtest.Binary(t)
	hec := exportertest.NewHEC("live-tok")
	defer hec.Close()
	cfg := liveConfig(t, hec.URL)
	const n = 1500
	appendLines(t, cfg.AccessLogPath, flbtest.Lines("live", 0, n/2, 400))
	logf, err := os.Create(filepath.Join(t.TempDir(), "fluent-bit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	sup := &Supervisor{Binary: bin, Dir: filepath.Join(t.TempDir(), "etc"), Config: cfg, Output: logf}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("supervisor: %v", err)
		}
	}()
	if !hec.WaitUnique(n/2, 2*time.Minute) {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("HEC received %d of %d; fluent-bit said:\n%s", hec.Unique(), n/2, b)
	}
	appendLines(t, cfg.AccessLogPath, flbtest.Lines("live", n/2, n, 400))
	if !hec.WaitUnique(n, 2*time.Minute) {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("HEC received %d of %d; fluent-bit said:\n%s", hec.Unique(), n, b)
	}
	for id, c := range hec.Counts() {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	if p := hec.Problems(); len(p) > 0 {
		t.Error(p)
	}
	if sup.Starts() != 1 {
		t.Errorf("fluent-bit started %d times, want 1", sup.Starts())
	}
}
