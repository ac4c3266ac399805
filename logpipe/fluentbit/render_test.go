package fluentbit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/ir"
)

func config() Config {
	return Config{
		AccessLogPath: "/var/log/flexgw/envoy-access.log",
		StateDir:      "/var/lib/flexgw/fluent-bit",
		PluginPath:    "/usr/lib/flexgw/out_flexgw.so",
		QueueDir:      "/var/lib/flexgw/queue",
		GatewayID:     "gw-1",
		HTTPPort:      2020,
		Logging: &ir.Logging{Outputs: []ir.LogOutput{
			{Name: "splunk-out", Type: "splunk", Parameters: map[string]string{"host": "splunk.example.com", "port": "8088", "splunk_token": "TOKEN", "tls": "On"}},
			{Name: "sumo", Type: "http", Parameters: map[string]string{"host": "endpoint1.collection.sumologic.com", "port": "443", "uri": "/receiver/v1/http/X", "format": "json_lines", "tls": "On"}},
			{Name: "runtime-only", Type: "nrlogs", Parameters: map[string]string{"license_key": "K"}},
			{Name: "default", Type: "file", Parameters: map[string]string{"file": "/var/log/log.txt", "format": "template", "template": "[{time}] {method} {path}"}},
			{Name: "dynatrace", Type: "http", Parameters: map[string]string{"host": "env1.live.dynatrace.com", "Port": "443", "header": "Content-Type application/json; charset=utf-8\nAuthorization Api-Token T", "URI": "/api/v2/logs/ingest", "Format": "json", "tls": "on"}},
			{Name: "console", Type: "stdout", Parameters: map[string]string{"format": "json_lines"}},
		}, AccessLogOutputs: []string{"splunk-out", "sumo", "default", "dynatrace", "console"}, RuntimeLogOutputs: []string{"runtime-only"}},
	}
}

func TestRenderGolden(t *testing.T) {
	files, err := Render(config(), "/etc/flexgw/fluent-bit/plugins.conf")
	if err != nil {
		t.Fatal(err)
	}
	got := string(files.Main) + "----\n" + string(files.Plugins) + "----\n" + string(files.Parsers)
	golden := filepath.Join("testdata", "fluent-bit.conf.golden")
	testutil.Golden(t, golden, []byte(got))
}

func TestRenderErrors(t *testing.T) {
	c := config()
	c.AccessLogPath = "relative.log"
	if _, err := Render(c, "/p"); err == nil || !strings.Contains(err.Error(), "AccessLogPath") {
		t.Errorf("relative path: %v", err)
	}
	c = config()
	c.Logging.Outputs[0].Parameters["bogus"] = "1"
	if _, err := Render(c, "/p"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("bad parameter: %v", err)
	}
}

// TestSupervisorRestartsAndStops runs a stand-in fluent-bit (Fluent Bit
// cannot be installed here): a script that records its arguments and
// exits on its first run, then stays up until signalled.
func TestSupervisorRestartsAndStops(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	stand := filepath.Join(dir, "fluent-bit")
	script := "#!/bin/sh\necho \"$@\" >> " + runs + "\n" +
		"[ $(wc -l < " + runs + ") -lt 2 ] && exit 1\n" +
		"trap 'echo stopped >> " + runs + "; exit 0' TERM\nwhile :; do sleep 0.05; done\n"
	if err := os.WriteFile(stand, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := config()
	c.StateDir = filepath.Join(dir, "state")
	s := &Supervisor{Binary: stand, Dir: filepath.Join(dir, "conf"), Config: c, MinBackoff: 10 * time.Millisecond, Grace: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for s.Starts() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Starts() < 2 {
		t.Fatalf("not restarted after exit: %d starts", s.Starts())
	}
	// Wait for the second run to have installed its trap (it logs first).
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(runs); strings.Count(string(b), "-c ") >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(runs)
	if !strings.Contains(string(b), "-c "+filepath.Join(dir, "conf", "fluent-bit.conf")) {
		t.Errorf("runs: %s", b)
	}
	if conf, err := os.ReadFile(filepath.Join(dir, "conf", "fluent-bit.conf")); err != nil || !strings.Contains(string(conf), "Name                     flexgw") {
		t.Errorf("config not written: %v", err)
	}
}
