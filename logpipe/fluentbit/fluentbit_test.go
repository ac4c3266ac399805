package fluentbit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// SIGKILL at any moment loses nothing with the rendered settings: a
// writer keeps appending to the access log while the real fluent-bit
// (with the plugin inside, Buffer fluentbit: a chunk leaves Fluent Bit's
// storage only once delivered) is killed twice mid-stream and restarted
// on the same storage and tail DB; every record id arrives (duplicates
// allowed: at least once).
func TestRenderedConfigSurvivesSIGKILL(t *testing.T) {
	bin := flbtest.Binary(t)
	hec := exportertest.NewHEC("live-tok")
	defer hec.Close()
	cfg := liveConfig(t, hec.URL)
	sup := &Supervisor{Dir: filepath.Join(t.TempDir(), "etc"), Config: cfg}
	conf, err := sup.WriteConfig()
	if err != nil {
		t.Fatal(err)
	}
	// A steady stream (about 1,000 lines a second), so each kill finds
	// lines read into Fluent Bit's current chunk and not yet flushed.
	const n, step = 12000, 50
	var progress atomic.Int64
	written := make(chan struct{})
	go func() {
		defer close(written)
		for i := 0; i < n; i += step {
			appendLines(t, cfg.AccessLogPath, flbtest.Lines("kill", i, i+step, 400))
			progress.Store(int64(i + step))
			time.Sleep(50 * time.Millisecond)
		}
	}()
	logDir := t.TempDir()
	for _, at := range []int64{n / 4, n / 2} {
		before := hec.Unique()
		p := flbtest.Start(t, bin, logDir, "-c", conf)
		deadline := time.Now().Add(2 * time.Minute)
		for progress.Load() < at || hec.Unique() <= before {
			if time.Now().After(deadline) {
				t.Fatalf("no progress before the kill (written %d, HEC %d); fluent-bit said:\n%s", progress.Load(), hec.Unique(), p.Log())
			}
			time.Sleep(5 * time.Millisecond)
		}
		p.Kill()
	}
	<-written
	p := flbtest.Start(t, bin, logDir, "-c", conf)
	if !hec.WaitUnique(n, 3*time.Minute) {
		counts := hec.Counts()
		var missing []string
		for i := 0; i < n && len(missing) < 10; i++ {
			if id := fmt.Sprintf("kill-%d", i); counts[id] == 0 {
				missing = append(missing, id)
			}
		}
		t.Fatalf("after two SIGKILLs %d of %d records arrived (first missing %v); fluent-bit said:\n%s", hec.Unique(), n, missing, p.Log())
	}
	dups := 0
	for _, c := range hec.Counts() {
		dups += c - 1
	}
	t.Logf("%d records, 2 SIGKILLs: 0 missing, %d duplicates", n, dups)
}

// The hand-written config in docs/logging.md runs as shown in a real
// Fluent Bit, with its paths and endpoint pointed at temp dirs and a HEC
// stand-in, and ships what the tail reads.
func TestDocsSnippetRunsInRealFluentBit(t *testing.T) {
	bin := flbtest.Binary(t)
	doc, err := os.ReadFile(filepath.Join(flbtest.RepoRoot(t), "docs", "logging.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	i := strings.Index(text, "The same config written by hand")
	if i < 0 {
		t.Fatal("docs/logging.md lost its hand-written Fluent Bit config")
	}
	blocks := strings.Split(text[i:], "```")
	if len(blocks) < 4 {
		t.Fatal("docs/logging.md: the config and plugins.conf blocks are missing")
	}
	mainConf, pluginsConf := blocks[1], blocks[3]
	hec := exportertest.NewHEC("doc-tok")
	defer hec.Close()
	dir := t.TempDir()
	replace := strings.NewReplacer(
		"/etc/flexgw/fluent-bit/plugins.conf", filepath.Join(dir, "plugins.conf"),
		"/var/lib/flexgw", filepath.Join(dir, "lib"),
		"/var/log/flexgw", dir,
		"/usr/lib/flexgw/out_flexgw.so", flbtest.Plugin(t),
		"https://splunk.example.com:8088", hec.URL)
	for name, body := range map[string]string{"fluent-bit.conf": mainConf, "plugins.conf": pluginsConf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(replace.Replace(body)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "lib", "fluent-bit"), 0o700); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	appendLines(t, filepath.Join(dir, "envoy-access.log"), flbtest.Lines("doc", 0, n, 300))
	t.Setenv("SPLUNK_HEC_TOKEN", "doc-tok")
	p := flbtest.Start(t, bin, dir, "-c", filepath.Join(dir, "fluent-bit.conf"))
	if !hec.WaitUnique(n, 2*time.Minute) {
		t.Fatalf("HEC received %d of %d; fluent-bit said:\n%s", hec.Unique(), n, p.Log())
	}
	if err := p.Stop(30 * time.Second); err != nil {
		t.Error(err)
	}
	if strings.Contains(p.Log(), "[error]") {
		t.Errorf("fluent-bit logged errors:\n%s", p.Log())
	}
}

// Under the rendered config the aggregator may fail for a while: first
// it drops every connection, then answers 503 to two requests of three; a
// chunk the plugin cannot deliver goes back to Fluent Bit and is retried
// with what was confirmed of it remembered. Every record arrives exactly
// once (nothing is accepted by a failed request, so nothing is resent).
// Retry_Window is cut to 100ms so that chunks do go back partly sent.
func TestRenderedConfigRidesOutFailures(t *testing.T) {
	bin := flbtest.Binary(t)
	hec := exportertest.NewHEC("live-tok")
	defer hec.Close()
	var mode atomic.Int32 // 0 drop, 1 every other 503, 2 fine
	hec.SetFault(func(n int) exportertest.Fault {
		switch mode.Load() {
		case 0:
			return exportertest.Fault{Drop: true}
		case 1:
			if n%3 != 0 {
				return exportertest.Fault{Status: 503}
			}
		}
		return exportertest.Fault{}
	})
	cfg := liveConfig(t, hec.URL)
	// Small requests, so a chunk is many of them and some fail.
	cfg.Logging.Outputs[0].Parameters["max_body_bytes"] = "20000"
	const n = 3000
	appendLines(t, cfg.AccessLogPath, flbtest.Lines("flaky", 0, n, 400))
	sup := &Supervisor{Dir: filepath.Join(t.TempDir(), "etc"), Config: cfg}
	conf, err := sup.WriteConfig()
	if err != nil {
		t.Fatal(err)
	}
	// A short Retry_Window: chunks go back to Fluent Bit partly delivered.
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	short := strings.Replace(string(b), "    Buffer ", "    Retry_Window 100ms\n    Buffer ", 1)
	if err := os.WriteFile(conf, []byte(short), 0o600); err != nil {
		t.Fatal(err)
	}
	p := flbtest.Start(t, bin, t.TempDir(), "-c", conf)
	waitRequests := func(k int) {
		deadline := time.Now().Add(2 * time.Minute)
		for hec.Requests() < k {
			if time.Now().After(deadline) {
				t.Fatalf("the plugin made %d requests, want %d; fluent-bit said:\n%s", hec.Requests(), k, p.Log())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitRequests(3)
	mode.Store(1)
	waitRequests(hec.Requests() + 20)
	mode.Store(2)
	if !hec.WaitUnique(n, 3*time.Minute) {
		t.Fatalf("HEC received %d of %d; fluent-bit said:\n%s", hec.Unique(), n, p.Log())
	}
	for id, c := range hec.Counts() {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	if !strings.Contains(p.Log(), "goes back to Fluent Bit") {
		t.Errorf("no chunk went back to Fluent Bit; fluent-bit said:\n%s", p.Log())
	}
}
