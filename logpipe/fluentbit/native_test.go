package fluentbit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/exporters/file"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/logpipe/fluentbit/flbtest"
)

// TestNativeOutputsInRealFluentBit: the file, http and stdout outputs the
// agent renders run as Fluent Bit's own outputs in a real Fluent Bit: the
// file gets every record, the HTTP receiver gets every record with the
// configured list of headers, stdout prints them; and flexgw's in-process
// file output writes the same records as Fluent Bit's for the same
// parameters.
func TestNativeOutputsInRealFluentBit(t *testing.T) {
	bin := flbtest.Binary(t)
	var mu sync.Mutex
	got := map[string]int{}
	var hdrs http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		hdrs = r.Header.Clone()
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				id, _ := rec["request_id"].(string)
				got[id]++
			}
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	dir := t.TempDir()
	outFile := filepath.Join(dir, "out", "log.txt")
	cfg := Config{
		AccessLogPath: filepath.Join(dir, "access.log"),
		StateDir:      filepath.Join(dir, "state"),
		PluginPath:    flbtest.Plugin(t),
		QueueDir:      filepath.Join(dir, "queue"),
		Logging: &ir.Logging{Outputs: []ir.LogOutput{
			{Name: "default", Type: "file", Parameters: map[string]string{"file": outFile, "format": "plain", "mkdir": "on"}},
			{Name: "collector", Type: "http", Parameters: map[string]string{"host": u.Hostname(), "port": u.Port(), "uri": "/ingest",
				"format": "json_lines", "header": "X-Api-Token secret-1\nX-Team gateway"}},
			{Name: "console", Type: "stdout", Parameters: map[string]string{"format": "json_lines"}},
		}},
	}
	const n = 300
	appendLines(t, cfg.AccessLogPath, flbtest.Lines("native", 0, n, 300))
	sup := &Supervisor{Dir: filepath.Join(dir, "etc"), Config: cfg}
	conf, err := sup.WriteConfig()
	if err != nil {
		t.Fatal(err)
	}
	p := flbtest.Start(t, bin, dir, "-c", conf)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		received := len(got)
		mu.Unlock()
		lines, _ := os.ReadFile(outFile)
		if received == n && bytes.Count(lines, []byte("\n")) == n && strings.Count(p.Log(), `"request_id":"native-`) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes: receiver %d, file %d lines of %d; fluent-bit said:\n%s", received, bytes.Count(lines, []byte("\n")), n, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	for id, c := range got {
		if c != 1 {
			t.Errorf("%s received %d times", id, c)
		}
	}
	if hdrs.Get("X-Api-Token") != "secret-1" || hdrs.Get("X-Team") != "gateway" {
		t.Errorf("headers %v", hdrs)
	}
	mu.Unlock()

	// flexgw's own file output, same parameters, same records: the same
	// lines (records compared as JSON: Fluent Bit re-encodes them).
	fbLines := strings.Split(strings.TrimSpace(mustRead(t, outFile)), "\n")
	ours := filepath.Join(dir, "ours.txt")
	x, err := file.New("default", map[string]string{"file": ours, "format": "plain"}, exporters.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	src := strings.Split(strings.TrimSpace(string(flbtest.Lines("native", 0, n, 300))), "\n")
	evs := make([]exporters.Event, len(src))
	for i, l := range src {
		evs[i] = exporters.Event{Time: time.Now(), Kind: exporters.Access, JSON: []byte(l)}
	}
	if err := x.Export(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	ourLines := strings.Split(strings.TrimSpace(mustRead(t, ours)), "\n")
	if len(ourLines) != len(fbLines) {
		t.Fatalf("%d lines from flexgw, %d from Fluent Bit", len(ourLines), len(fbLines))
	}
	for i := range fbLines {
		var a, b map[string]any
		if json.Unmarshal([]byte(fbLines[i]), &a) != nil || json.Unmarshal([]byte(ourLines[i]), &b) != nil {
			t.Fatalf("line %d is not JSON: %q / %q", i, fbLines[i], ourLines[i])
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("line %d differs:\nFluent Bit %s\nflexgw     %s", i, fbLines[i], ourLines[i])
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
