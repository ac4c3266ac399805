package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/logpipe/fluentbit/flbtest"
)

type eventTime struct{ time.Time }

func (e *eventTime) MarshalMsgpack() ([]byte, error) {
	b := []byte{0xd7, 0x00} // fixext 8, type 0: Fluent Bit's EventTime
	b = binary.BigEndian.AppendUint32(b, uint32(e.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(e.Nanosecond())), nil
}

// chunk writes a Fluent Bit chunk of records from..to: format 1 is
// [EventTime, record], format 2 is [[int ts, metadata], record].
func chunk(t *testing.T, path string, format, from, to int) {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for i := from; i < to; i++ {
		rec := map[string]any{"request_id": fmt.Sprintf("req-%d", i), "method": "GET", "path": "/x", "response_code": 200,
			"authorization": "Bearer plugin-secret"}
		var ev any = []any{&eventTime{time.Unix(1700000000, 5e8)}, rec}
		if format == 2 {
			ev = []any{[]any{int64(1700000000), map[string]any{}}, rec}
		}
		if err := enc.Encode(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// build compiles the plugin as Fluent Bit loads it and the C harness that
// stands in for Fluent Bit's Go proxy.
func build(t *testing.T) (so, harness string) {
	t.Helper()
	dir := t.TempDir()
	so = flbtest.Plugin(t)
	harness = filepath.Join(dir, "harness")
	if out, err := exec.Command("gcc", "-Wall", "-o", harness, "testdata/harness.c", "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return so, harness
}

func TestPluginThroughCABI(t *testing.T) {
	so, harness := build(t)
	hec := exportertest.NewHEC("hec-tok")
	defer hec.Close()
	hec.KeepBodies()
	sumo := exportertest.NewSumo("SRC")
	defer sumo.Close()
	down := exportertest.NewHEC("t")
	defer down.Close()
	down.SetFault(func(int) exportertest.Fault { return exportertest.Fault{Status: 503} })

	dir := t.TempDir()
	c1, c2, c3, big := filepath.Join(dir, "c1"), filepath.Join(dir, "c2"), filepath.Join(dir, "c3"), filepath.Join(dir, "big")
	chunk(t, c1, 1, 0, 300)
	chunk(t, c2, 2, 300, 600)
	chunk(t, big, 1, 0, 2000)
	if err := os.WriteFile(c3, []byte{0x92, 0xd7}, 0o600); err != nil { // a truncated event
		t.Fatal(err)
	}
	args := []string{so,
		"new", "Exporter=splunk", "Endpoint=" + hec.URL, "Token=hec-tok", "Index=gw", "Flush_Interval=20ms",
		"Queue_Dir=" + filepath.Join(dir, "q1"), "Drain_Timeout=2m", "init",
		"new", "Exporter=sumologic", "Endpoint=" + sumo.SourceURL(), "Source_Category=gw/access", "Flush_Interval=20ms",
		"Queue_Dir=" + filepath.Join(dir, "q2"), "Drain_Timeout=2m", "init",
		"new", "Exporter=splunk", "init", // no Endpoint: init must fail
		"new", "Exporter=splunk", "Endpoint=" + down.URL, "Token=t", "Queue_Max_Bytes=40000", "Queue_Dir=" + filepath.Join(dir, "q3"), "Drain_Timeout=1ms", "init",
		"use:0", "flush:" + c1, "flush:" + c2, "flush:" + c3,
		"use:1", "flush:" + c1,
		"use:3", "flush:" + big,
		"exit",
	}
	out, err := exec.Command(harness, args...).Output()
	if err != nil {
		t.Fatalf("harness: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{"register 0 type=2 proxy=11 name=flexgw", "init 1", "init 1", "init 0", "init 1",
		"flush 1", "flush 1", "flush 0", "flush 1", "flush 2", "exit 1", "exit 1", "exit 1", "exitall 1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("harness said\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !hec.WaitUnique(600, time.Minute) || !sumo.WaitUnique(300, time.Minute) {
		t.Fatalf("HEC got %d of 600, Sumo %d of 300", hec.Unique(), sumo.Unique())
	}
	if p := append(hec.Problems(), sumo.Problems()...); len(p) > 0 {
		t.Fatal(p)
	}
	for _, b := range hec.Bodies() {
		if strings.Contains(string(b), "plugin-secret") {
			t.Fatal("Authorization value reached Splunk")
		}
		if !strings.Contains(string(b), `"time":1700000000.500`) && !strings.Contains(string(b), `"time":1700000000.000`) {
			t.Fatalf("event time lost: %.300s", b)
		}
	}
}
