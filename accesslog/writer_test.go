package accesslog

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestFileWriterWritesJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	w, err := NewFileWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				rec := &Record{StartTime: time.Now(), Method: "GET", Path: "/x\"y\n", ResponseCode: 200, Duration: 3 * time.Millisecond}
				w.Write(rec)
				rec.Method = "REUSED" // the writer must not keep the pointer
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 1000 {
		t.Fatalf("%d lines, want 1000", len(lines))
	}
	for _, l := range lines {
		if l["method"] != "GET" || l["path"] != "/x\"y\n" || l["duration"] != float64(3) || l["response_flags"] != "-" {
			t.Fatalf("line %v", l)
		}
	}
	w.Write(&Record{Method: "late"})
	if w.Dropped() != 1 {
		t.Errorf("write after Close: dropped %d", w.Dropped())
	}
}

func TestFileWriterFlushesPeriodically(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	w, err := NewFileWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(&Record{Method: "GET", RequestID: "periodic"})
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), `"request_id":"periodic"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("record not flushed without Close")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewFileWriterBadPath(t *testing.T) {
	_, err := NewFileWriter(filepath.Join(t.TempDir(), "missing-dir", "a.log"))
	if err == nil || !strings.Contains(err.Error(), "missing-dir") {
		t.Fatalf("err = %v", err)
	}
}

type countSink struct{ n int }

func (c *countSink) Write(*Record) { c.n++ }

func TestMultiSink(t *testing.T) {
	if MultiSink() != nil || MultiSink(nil, nil) != nil {
		t.Error("MultiSink of nothing should be nil")
	}
	a := &countSink{}
	if MultiSink(nil, a) != Sink(a) {
		t.Error("MultiSink of one sink should be that sink")
	}
	b := &countSink{}
	m := MultiSink(a, b)
	m.Write(&Record{})
	m.Write(&Record{})
	if a.n != 2 || b.n != 2 {
		t.Errorf("counts %d %d", a.n, b.n)
	}
}

// BenchmarkFileWriter measures the request-path cost of logging one record.
func BenchmarkFileWriter(b *testing.B) {
	w, err := NewFileWriter(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	rec := &Record{
		StartTime: time.Now(), Method: "GET", Path: "/orders/42?x=1", Protocol: "HTTP/1.1",
		ResponseCode: 200, BytesSent: 512, Duration: 3 * time.Millisecond, UserAgent: "curl/8.0",
		RequestID: "0f8fad5b-d9cb-469f-a165-70867728950e", Authority: "api.example.com",
		UpstreamHost: "10.0.0.7:8080", UpstreamCluster: "default/orders", APIInstance: "default/orders",
		Route: "orders-0", GatewayID: "gw-1",
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Write(rec)
		}
	})
	// Records dropped because the disk could not keep up with the loop.
	b.ReportMetric(float64(w.Dropped())/float64(b.N), "dropped/op")
}
