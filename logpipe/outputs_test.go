package logpipe

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexgw/flexgw/ir/irlog"
)

// TestFileHTTPStdoutOutputsInProcess: the in-process pipeline delivers
// access and runtime logs through file (Flex's reference-guide template),
// generic http (json_lines, header list) and stdout outputs, each record
// once.
func TestFileHTTPStdoutOutputsInProcess(t *testing.T) {
	var mu sync.Mutex
	ids := map[string]int{}
	auth := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			z, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rd = z
		}
		b, _ := io.ReadAll(rd)
		mu.Lock()
		defer mu.Unlock()
		auth = r.Header.Get("Authorization")
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				id, _ := m["request_id"].(string)
				ids[id]++
			}
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "log.txt")
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	l := &irlog.Logging{Outputs: []irlog.LogOutput{
		{Name: "default", Type: "file", Parameters: map[string]string{"file": logFile, "format": "template",
			"template": "[{time}][{level}][{component}] {message}{request_id}\n"}},
		{Name: "collector", Type: "http", Parameters: map[string]string{"host": u.Hostname(), "port": u.Port(), "uri": "/logs",
			"format": "json_lines", "header": "Authorization Api-Token abc\nX-Other 1", "compress": "gzip"}},
		{Name: "console", Type: "stdout", Parameters: map[string]string{"format": "json_lines"}},
	}, AccessLogOutputs: []string{"default", "collector", "console"}, RuntimeLogOutputs: []string{"default"}}
	opts := testOptions(t, filepath.Join(dir, "q"))
	opts.Exporter.Stdout = stdout
	p := mustStart(t, l, opts)
	const n = 200
	if bad, err := p.IngestJSONLines(lines(0, n)); err != nil || bad != 0 {
		t.Fatalf("ingest: %d bad, %v", bad, err)
	}
	slog.New(p.RuntimeHandler(nil)).Info("config applied")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	file := strings.Split(strings.TrimSpace(readFile(t, logFile)), "\n")
	if len(file) != n+1 || !strings.HasSuffix(file[0], "[][] req-0") {
		t.Errorf("file: %d lines, first %q", len(file), file[0])
	}
	if !strings.Contains(strings.Join(file, "\n"), "[INFO][agent] config applied") {
		t.Errorf("runtime record missing from the file")
	}
	mu.Lock()
	if len(ids) != n || auth != "Api-Token abc" {
		t.Errorf("receiver: %d ids, Authorization %q", len(ids), auth)
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("%s received %d times", id, c)
		}
	}
	mu.Unlock()
	if out := readFile(t, stdout.Name()); strings.Count(out, `"request_id":"req-`) != n {
		t.Errorf("stdout has %d records", strings.Count(out, `"request_id":"req-`))
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
