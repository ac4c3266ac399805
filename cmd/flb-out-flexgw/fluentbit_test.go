package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/logpipe/fluentbit/flbtest"
)

// These tests load the plugin, built by `make plugin` under the name it
// ships with, into a real Fluent Bit (flbtest.Binary says plainly when
// none is installed) and deliver access-log lines tailed from a file to
// stand-in receivers written to each vendor's published protocol.

const flbRecords = 1500

func TestMain(m *testing.M) { flbtest.Main(m) }

// writeLog writes the access log the tail input reads.
func writeLog(t *testing.T, dir, prefix string) string {
	t.Helper()
	path := filepath.Join(dir, "access.log")
	if err := os.WriteFile(path, flbtest.Lines(prefix, 0, flbRecords, 400), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitAll waits for every record id at r, failing with Fluent Bit's log.
func waitAll(t *testing.T, name string, r *exportertest.Receiver, p *flbtest.Proc, prefix string) {
	t.Helper()
	if !r.WaitUnique(flbRecords, 2*time.Minute) {
		t.Fatalf("%s received %d of %d records; fluent-bit log:\n%s", name, r.Unique(), flbRecords, p.Log())
	}
	for id, n := range r.Counts() {
		if !strings.HasPrefix(id, prefix+"-") {
			t.Fatalf("%s received an unexpected record id %q", name, id)
		}
		if n != 1 {
			t.Errorf("%s received %s %d times", name, id, n)
		}
	}
	if p := r.Problems(); len(p) > 0 {
		t.Errorf("%s saw protocol problems: %v", name, p)
	}
}

// Fluent Bit loads the plugin named on the command line (-e) and runs it
// as an output configured with -p keys.
func TestRealFluentBitLoadsPluginByFlag(t *testing.T) {
	bin := flbtest.Binary(t)
	so := flbtest.Plugin(t)
	dir := t.TempDir()
	hec := exportertest.NewHEC("flag-tok")
	defer hec.Close()
	log := writeLog(t, dir, "flag")
	p := flbtest.Start(t, bin, dir, "-f", "1", "-e", so,
		"-i", "tail", "-p", "path="+log, "-p", "read_from_head=true", "-t", "access",
		"-o", "flexgw", "-m", "access", "-p", "exporter=splunk", "-p", "endpoint="+hec.URL,
		"-p", "token=flag-tok", "-p", "queue_dir="+filepath.Join(dir, "q"), "-p", "flush_interval=100ms")
	waitAll(t, "HEC", hec.Receiver, p, "flag")
	if err := p.Stop(30 * time.Second); err != nil {
		t.Errorf("fluent-bit did not stop cleanly: %v\n%s", err, p.Log())
	}
	if l := p.Log(); !strings.Contains(l, "flexgw") || strings.Contains(l, "[error]") {
		t.Errorf("fluent-bit log shows errors or no flexgw plugin:\n%s", l)
	}
}

// A plugins file loads it too, and one Fluent Bit runs every exporter
// side by side, each instance with its own queue.
func TestRealFluentBitPluginsFileEveryExporter(t *testing.T) {
	bin := flbtest.Binary(t)
	so := flbtest.Plugin(t)
	dir := t.TempDir()
	hec := exportertest.NewHEC("hec-tok")
	defer hec.Close()
	nr := exportertest.NewNewRelic("nr-key")
	defer nr.Close()
	sumo := exportertest.NewSumo("SUMO")
	defer sumo.Close()
	log := writeLog(t, dir, "all")
	plugins := filepath.Join(dir, "plugins.conf")
	if err := os.WriteFile(plugins, []byte("[PLUGINS]\n    Path "+so+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`[SERVICE]
    Flush         1
    Log_Level     info
    plugins_file  %s

[INPUT]
    Name            tail
    Tag             access
    Path            %s
    Read_from_Head  true

[OUTPUT]
    Name            flexgw
    Match           access
    Exporter        splunk
    Endpoint        %s
    Token           hec-tok
    Index           gw
    Queue_Dir       %s
    Flush_Interval  100ms

[OUTPUT]
    Name            flexgw
    Match           access
    Exporter        newrelic
    Endpoint        %s/log/v1
    Token           nr-key
    Queue_Dir       %s
    Flush_Interval  100ms

[OUTPUT]
    Name             flexgw
    Match            access
    Exporter         sumologic
    Endpoint         %s
    Source_Category  gw/access
    Queue_Dir        %s
    Flush_Interval   100ms
`, plugins, log, hec.URL, filepath.Join(dir, "q-hec"), nr.URL, filepath.Join(dir, "q-nr"), sumo.SourceURL(), filepath.Join(dir, "q-sumo"))
	confPath := filepath.Join(dir, "fluent-bit.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := flbtest.Start(t, bin, dir, "-c", confPath)
	waitAll(t, "HEC", hec.Receiver, p, "all")
	waitAll(t, "New Relic", nr.Receiver, p, "all")
	waitAll(t, "Sumo Logic", sumo.Receiver, p, "all")
	if got := sumo.LastHeaders().Get("X-Sumo-Category"); got != "gw/access" {
		t.Errorf("X-Sumo-Category %q", got)
	}
	if err := p.Stop(30 * time.Second); err != nil {
		t.Errorf("fluent-bit did not stop cleanly: %v\n%s", err, p.Log())
	}
	if l := p.Log(); strings.Contains(l, "[error]") {
		t.Errorf("fluent-bit logged errors:\n%s", l)
	}
}

// The rule the shipped name follows: Fluent Bit hands a file whose name
// starts with "flb-" to its C plugin loader, which refuses a Go plugin.
func TestRealFluentBitRefusesFlbPrefix(t *testing.T) {
	bin := flbtest.Binary(t)
	so := flbtest.Plugin(t)
	dir := t.TempDir()
	b, err := os.ReadFile(so)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "flb-out-flexgw.so")
	if err := os.WriteFile(bad, b, 0o700); err != nil {
		t.Fatal(err)
	}
	p := flbtest.Start(t, bin, dir, "-e", bad, "-i", "dummy", "-o", "flexgw", "-p", "queue_dir="+dir)
	if !p.WaitLog("error loading DSO C plugin", time.Minute) {
		t.Fatalf("fluent-bit accepted a flb- prefixed Go plugin; the shipped name's reason is gone:\n%s", p.Log())
	}
}
