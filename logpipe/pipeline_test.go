package logpipe

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/ir/irlog"
)

// stand-in aggregator per output type, with the parameters pointing at it.
type target struct {
	typ    string
	rcv    *exportertest.Receiver
	params map[string]string
	close  func()
}

func targets(t *testing.T) []target {
	t.Helper()
	hec := exportertest.NewHEC("hec-token")
	nr := exportertest.NewNewRelic("nr-key")
	sumo := exportertest.NewSumo("SUMOTOKEN")
	ts := []target{
		{"splunk", hec.Receiver, map[string]string{"endpoint": hec.URL, "splunk_token": "hec-token"}, hec.Close},
		{"newrelic", nr.Receiver, map[string]string{"endpoint": nr.URL + "/log/v1", "api_key": "nr-key"}, nr.Close},
		{"sumologic", sumo.Receiver, map[string]string{"url": sumo.SourceURL()}, sumo.Close},
	}
	t.Cleanup(func() {
		for _, x := range ts {
			x.close()
		}
	})
	return ts
}

func testOptions(t *testing.T, dir string) Options {
	return Options{
		GatewayID: "gw-1", Hostname: "host-1", QueueDir: dir,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Batch:  BatchOptions{MaxRecords: 2000, FlushInterval: 20 * time.Millisecond},
		Retry:  RetryOptions{Min: 5 * time.Millisecond, Max: 100 * time.Millisecond},
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimSpace(string(b)))
	}
	return len(b), nil
}

func line(i int) string {
	r := accesslog.Record{StartTime: time.Unix(1700000000, int64(i)*1e6).UTC(), Method: "GET", Path: fmt.Sprintf("/items/%d", i),
		Protocol: "HTTP/1.1", ResponseCode: 200, RequestID: fmt.Sprintf("req-%d", i), UserAgent: "test", APIInstance: "default/orders"}
	return string(r.AppendJSON(nil))
}

func lines(from, to int) []byte {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(line(i))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func logging(name, typ string, params map[string]string) *irlog.Logging {
	return &irlog.Logging{Outputs: []irlog.LogOutput{{Name: name, Type: typ, Parameters: params}}, AccessLogOutputs: []string{name}}
}

func mustStart(t *testing.T, l *irlog.Logging, opts Options) *Pipeline {
	t.Helper()
	p, err := New(l, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// TestNoLoss sends 20,000 records through each exporter while its
// receiver answers 503 for a while, drops connections (some after
// accepting the batch) and answers slowly; every record must arrive.
func TestNoLoss(t *testing.T) {
	const n = 20_000
	for _, tg := range targets(t) {
		t.Run(tg.typ, func(t *testing.T) {
			t.Parallel()
			tg.rcv.SetFault(func(req int) exportertest.Fault {
				switch {
				case req <= 6:
					return exportertest.Fault{Status: 503, RetryAfter: "0"}
				case req%9 == 0:
					return exportertest.Fault{Drop: true}
				case req%13 == 0:
					return exportertest.Fault{DropAfterAccept: true}
				case req%5 == 0:
					return exportertest.Fault{Delay: 50 * time.Millisecond}
				}
				return exportertest.Fault{}
			})
			p := mustStart(t, logging("out", tg.typ, tg.params), testOptions(t, t.TempDir()))
			for i := 0; i < n; i += 1000 {
				if bad, err := p.IngestJSONLines(lines(i, i+1000)); err != nil || bad != 0 {
					t.Fatalf("ingest: %d bad, %v", bad, err)
				}
			}
			if !tg.rcv.WaitUnique(n, 3*time.Minute) {
				t.Fatalf("%d of %d records arrived; stats %+v", tg.rcv.Unique(), n, p.Stats())
			}
			dups := 0
			for _, c := range tg.rcv.Counts() {
				dups += c - 1
			}
			st := p.Stats()[0]
			t.Logf("%s: %d records, %d duplicates, %d requests, stats %+v", tg.typ, n, dups, tg.rcv.Requests(), st)
			if p := tg.rcv.Problems(); len(p) > 0 {
				t.Fatalf("protocol problems: %v", p[:min(5, len(p))])
			}
			if st.RecordsIn != n || st.Dropped != 0 || st.DeadLettered != 0 || st.Retried == 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestRedaction: an Authorization value (and cookies, configured headers
// and query parameters) never reaches any exporter's request body.
func TestRedaction(t *testing.T) {
	const secret = "Bearer s3cr3t-token-value"
	in := fmt.Sprintf(`{"start_time":"2026-01-01T00:00:00.000Z","method":"GET","path":"/x?access_token=qs3cr3t&k=1","request_id":"red-1",`+
		`"authorization":%q,"req_cookie":"sess=c00kie","request_headers":{"Authorization":%q,"X-Api-Key":"h3ader","Accept":"*/*"},"x_api_key":"h3ader"}`, secret, secret)
	for _, tg := range targets(t) {
		t.Run(tg.typ, func(t *testing.T) {
			tg.rcv.KeepBodies()
			opts := testOptions(t, t.TempDir())
			opts.Redact = RedactOptions{Headers: []string{"X-Api-Key"}}
			p := mustStart(t, logging("out", tg.typ, tg.params), opts)
			if _, err := p.IngestJSONLines([]byte(in)); err != nil {
				t.Fatal(err)
			}
			p.Write(&accesslog.Record{Method: "GET", Path: "/y?token=qs3cr3t", RequestID: "red-2"})
			if !tg.rcv.WaitUnique(2, time.Minute) {
				t.Fatal("records did not arrive")
			}
			for _, b := range tg.rcv.Bodies() {
				for _, s := range []string{"s3cr3t", "c00kie", "h3ader"} {
					if strings.Contains(string(b), s) {
						t.Fatalf("%q reached the aggregator: %s", s, b)
					}
				}
				if !strings.Contains(string(b), "*/*") {
					t.Errorf("unrelated header lost: %s", b)
				}
			}
		})
	}
}

// TestWriteSinkEnriches drives the in-process path (accesslog.Sink).
func TestWriteSinkEnriches(t *testing.T) {
	hec := exportertest.NewHEC("t")
	defer hec.Close()
	opts := testOptions(t, t.TempDir())
	opts.Labels = map[string]string{"env": "prod"}
	p := mustStart(t, logging("s", "splunk", map[string]string{"endpoint": hec.URL, "splunk_token": "t"}), opts)
	rec := &accesslog.Record{Method: "GET", Path: "/", ResponseCode: 200}
	for i := 0; i < 100; i++ {
		rec.RequestID = fmt.Sprintf("w%d", i) // the caller reuses its record
		p.Write(rec)
	}
	if !hec.WaitUnique(100, time.Minute) {
		t.Fatalf("%d arrived", hec.Unique())
	}
	ev := string(hec.Events()[0])
	for _, want := range []string{`"gateway_id":"gw-1"`, `"host":"host-1"`, `"env":"prod"`} {
		if !strings.Contains(ev, want) {
			t.Errorf("%s missing from %s", want, ev)
		}
	}
}

func TestDeadLetter(t *testing.T) {
	nr := exportertest.NewNewRelic("k")
	defer nr.Close()
	nr.SetFault(func(n int) exportertest.Fault {
		if n == 1 {
			return exportertest.Fault{Status: 400}
		}
		return exportertest.Fault{}
	})
	dir := t.TempDir()
	opts := testOptions(t, dir)
	opts.Batch.MaxRecords = 10
	p := mustStart(t, logging("nr", "newrelic", map[string]string{"endpoint": nr.URL + "/log/v1", "api_key": "k"}), opts)
	if _, err := p.IngestJSONLines(lines(0, 20)); err != nil {
		t.Fatal(err)
	}
	if !nr.WaitUnique(10, time.Minute) {
		t.Fatal("second batch did not arrive")
	}
	deadline := time.Now().Add(time.Minute)
	for p.Stats()[0].DeadLettered != 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := p.Stats()[0]
	if st.DeadLettered != 10 || st.LastError == "" {
		t.Fatalf("stats %+v", st)
	}
	b, err := os.ReadFile(p.DeadLetterPath("nr"))
	if err != nil || !strings.Contains(string(b), `"status":400`) || !strings.Contains(string(b), "req-0") || !strings.Contains(string(b), "Bad Request") {
		t.Fatalf("dead letter: %v %s", err, b)
	}
}

func TestApplyKeepsQueue(t *testing.T) {
	down := exportertest.NewSumo("A")
	down.SetFault(func(int) exportertest.Fault { return exportertest.Fault{Status: 503} })
	defer down.Close()
	up := exportertest.NewSumo("B")
	defer up.Close()
	p := mustStart(t, logging("sumo", "sumologic", map[string]string{"url": down.SourceURL()}), testOptions(t, t.TempDir()))
	if _, err := p.IngestJSONLines(lines(0, 500)); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(logging("sumo", "sumologic", map[string]string{"url": "ftp://x"})); err == nil {
		t.Fatal("bad config applied")
	}
	if err := p.Apply(logging("sumo", "sumologic", map[string]string{"url": up.SourceURL()})); err != nil {
		t.Fatal(err)
	}
	if !up.WaitUnique(500, time.Minute) {
		t.Fatalf("%d of the records queued before reload arrived", up.Unique())
	}
}

func TestRuntimeLogs(t *testing.T) {
	sumo := exportertest.NewSumo("R")
	defer sumo.Close()
	l := &irlog.Logging{Outputs: []irlog.LogOutput{{Name: "rt", Type: "sumologic", Parameters: map[string]string{"url": sumo.SourceURL()}}},
		RuntimeLogOutputs: []string{"rt"}, RuntimeLogLevel: "warn"}
	p := mustStart(t, l, testOptions(t, t.TempDir()))
	log := slog.New(p.RuntimeHandler(nil)).With("component", "envoy")
	log.Info("not forwarded")
	log.Warn("upstream unhealthy", "cluster", "orders", "n", 3)
	p.Write(&accesslog.Record{RequestID: "access-not-routed-here"})
	if !sumo.WaitUnique(1, time.Minute) {
		t.Fatal("runtime log did not arrive")
	}
	ev := string(sumo.Events()[0])
	for _, want := range []string{`"level":"WARN"`, `"message":"upstream unhealthy"`, `"component":"envoy"`, `"cluster":"orders"`, `"n":3`} {
		if !strings.Contains(ev, want) {
			t.Errorf("%s missing from %s", want, ev)
		}
	}
	if n := len(sumo.Events()); n != 1 {
		t.Errorf("%d events, want only the warning", n)
	}
}

func TestValidate(t *testing.T) {
	ok := &irlog.Logging{Outputs: []irlog.LogOutput{
		{Name: "s", Type: "splunk", Parameters: map[string]string{"host": "splunk.example", "port": "8088", "splunk_token": "t", "tls": "On"}},
		{Name: "n", Type: "nrlogs", Parameters: map[string]string{"license_key": "k"}},
		{Name: "h", Type: "http", Parameters: map[string]string{"host": "endpoint4.collection.sumologic.com", "port": "443", "uri": "/receiver/v1/http/X", "format": "json_lines", "tls": "On"}},
	}, AccessLogOutputs: []string{"s", "n"}, RuntimeLogOutputs: []string{"h"}, RuntimeLogLevel: "info"}
	if err := Validate(ok); err != nil {
		t.Fatal(err)
	}
	bad := &irlog.Logging{Outputs: []irlog.LogOutput{
		{Name: "s", Type: "splunk", Parameters: map[string]string{"host": "h", "splunk_tokn": "t"}, Source: irlog.Source{File: "conf.d/logging.yaml", Line: 7, Kind: "Configuration", Name: "default/logging"}},
		{Name: "k", Type: "kafka"},
		{Name: "h", Type: "http", Parameters: map[string]string{"host": "example.com", "uri": "/x"}},
	}, AccessLogOutputs: []string{"missing"}, RuntimeLogLevel: "loud"}
	err := Validate(bad)
	for _, want := range []string{`conf.d/logging.yaml:7`, `conf.d/logging.yaml:7: Configuration/logging: spec.logging.outputs[0]: output "s" (type splunk): unknown parameter "splunk_tokn"`, `type "kafka" is not supported: flexgw implements the Fluent Bit outputs file, http, newrelic, nrlogs, splunk, stdout, sumologic`, `output "h" (type http): parameter "format": msgpack (Fluent Bit's default) is not supported`, `"missing" is not a name`, `runtimeLogs.logLevel`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
