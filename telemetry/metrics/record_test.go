package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/telemetry/metrics"
)

// newMetrics returns metrics on a fresh registry without runtime
// collectors, so two instances can be compared family by family.
func newMetrics() (*metrics.Metrics, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return metrics.New(reg, metrics.Options{NoRuntimeCollectors: true, Logger: slog.New(slog.DiscardHandler)}), reg
}

// dump gathers reg as text with the parts that legitimately differ between
// two observations of the same requests removed: exemplar and created
// timestamps (wall clock at observation time).
func dump(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				c.CreatedTimestamp = nil
				if c.Exemplar != nil {
					c.Exemplar.Timestamp = nil
				}
			}
			if h := m.GetHistogram(); h != nil {
				h.CreatedTimestamp = nil
				for _, bk := range h.GetBucket() {
					if bk.Exemplar != nil {
						bk.Exemplar.Timestamp = nil
					}
				}
			}
		}
		b.WriteString(prototext.Format(mf))
		b.WriteByte('\n')
	}
	return b.String()
}

// traceHook stands in for the tracer in front of the metrics hook, as
// telemetry.Combine orders them: it puts a sampled span context with the
// trace id of the X-Test-Trace header in the request's context (what the
// metrics hook turns into an exemplar) and, after the metrics hook's done
// function, writes that trace id into the access-log record (as the real
// tracer does).
func traceHook(next observe.Hooks) observe.Hooks {
	inner := next.Request
	next.Request = func(ctx context.Context, info observe.RequestInfo) (context.Context, observe.RequestDone) {
		var tid trace.TraceID
		if h := info.Header("X-Test-Trace"); h != "" {
			tid, _ = trace.TraceIDFromHex(h)
			ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: tid, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled,
			}))
		}
		ctx, done := inner(ctx, info)
		return ctx, func(rec *accesslog.Record, t observe.Timings) {
			done(rec, t)
			if tid.IsValid() {
				rec.TraceID = tid.String()
			}
		}
	}
	return next
}

// recordSink feeds every access-log record to ObserveRecord, the way the
// agent feeds the records it tails from Envoy's access log.
type recordSink struct{ m *metrics.Metrics }

func (s recordSink) Write(rec *accesslog.Record) { s.m.ObserveRecord(rec) }

// TestObserveRecordMatchesHooks runs real requests through the real
// built-in data plane: its hooks feed one Metrics, its access-log records
// (through ObserveRecord) another. Both registries must hold exactly the
// same series with the same values and exemplars: requests by method and
// class, all histograms, policy decisions, unmatched requests, an unknown
// method and an unreachable upstream.
func TestObserveRecordMatchesHooks(t *testing.T) {
	fromHooks, hookReg := newMetrics()
	fromRecords, recReg := newMetrics()

	hung := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/hang") {
			// Answer only after the client has gone away.
			hung <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, "hello")
	}))
	defer up.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	p, _ := strconv.Atoi(port)
	// A port nothing listens on: the route to it answers 502 UF.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()

	// Connections and endpoint health are not per request (with Envoy they
	// come from its stats, envoy/stats): compare the request path only.
	hooks := fromHooks.Hooks()
	hooks.Conn, hooks.EndpointHealth = nil, nil
	dp := dataplane.New(dataplane.Options{
		GatewayID: "gw-test",
		Logger:    slog.New(slog.DiscardHandler),
		AccessLog: recordSink{fromRecords},
		Hooks:     traceHook(hooks),
	})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = dp.Shutdown(ctx)
	}()
	svc := func(name string, port int) *ir.Service {
		return &ir.Service{Name: name, Namespace: "default", Protocol: ir.HTTP, LB: ir.RoundRobin,
			ConnectTimeout: 2 * time.Second, Endpoints: []ir.Endpoint{{Host: "127.0.0.1", Port: port}}}
	}
	snap := &ir.Snapshot{
		Version: 1,
		Listeners: []*ir.Listener{{Name: "http_127.0.0.1_0", Protocol: ir.HTTP, Host: "127.0.0.1", Port: 0, APIs: []*ir.API{{
			Name: "orders", Namespace: "default", BasePath: "/orders",
			Routes: []*ir.Route{
				{Name: "down", Rules: []ir.Rule{{Path: mustRegexp(t, "/down.*")}}, Destinations: []ir.Destination{{Service: "default/dead", Weight: 100}}},
				{Name: "r0", Destinations: []ir.Destination{{Service: "default/up", Weight: 100}}},
			},
			Policies: []*ir.Policy{{Name: "http-basic-authentication-flex", Binding: "default/orders#policies[0]", Order: 50,
				Config: []byte(`{"username":"u","password":"p"}`)}},
		}}}},
		Services: []*ir.Service{svc("up", p), svc("dead", deadPort)},
	}
	if err := dp.Apply(snap); err != nil {
		t.Fatal(err)
	}
	gw := "http://" + dp.Addr("127.0.0.1:0")

	c := &http.Client{}
	for i, tc := range []struct {
		method, path string
		auth         bool
		trace        string
		want         int
	}{
		{"GET", "/orders/1", true, "4bf92f3577b34da6a3ce929d0e0e4736", 200},
		{"GET", "/orders/2", true, "", 200},
		{"POST", "/orders/fail", true, "0af7651916cd43dd8448eb211c80319c", 503},
		{"BREW", "/orders/pot", true, "", 200},       // RFC 2324: counted as OTHER
		{"GET", "/orders/3", false, "", 401},         // denied by the policy
		{"DELETE", "/nowhere", false, "", 404},       // no API: unmatched
		{"PUT", "/orders/down/x", true, "", 502},     // upstream refused: UF
		{"HEAD", "/orders/4", true, "", 200},         // no body sent
		{"PATCH", "/orders/5", true, "not-hex", 200}, // no valid trace id
	} {
		var body io.Reader
		if tc.method != http.MethodHead {
			body = strings.NewReader(strings.Repeat("x", i*10))
		}
		req, _ := http.NewRequest(tc.method, gw+tc.path, body)
		if tc.auth {
			req.SetBasicAuth("u", "p")
		}
		if tc.trace != "" {
			req.Header.Set("X-Test-Trace", tc.trace)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}

	// A client that leaves before the response: code_class "none".
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw+"/orders/hang", nil)
	req.SetBasicAuth("u", "p")
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-hung
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("hanging request got a response")
	}

	// The data plane finishes the abandoned request after the client has
	// left: poll until both sides have counted it.
	// An exemplar is the latest per bucket, so which of the two trace
	// ids survives depends on timing: look for any.
	markers := []string{`"OTHER"`, `"unmatched"`, `"denied"`, `"trace_id"`, `"default/dead"`, `"none"`}
	covered := func(s string) string {
		for _, m := range markers {
			if !strings.Contains(s, m) {
				return m
			}
		}
		return ""
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		want, got := dump(t, hookReg), dump(t, recReg)
		missing := covered(want)
		if missing == "" && got == want {
			break
		}
		if time.Now().After(deadline) {
			if missing != "" {
				t.Fatalf("scenario not covered: no %s in\n%s", missing, want)
			}
			t.Fatalf("series from access-log records differ from the hooks'\n--- hooks\n%s\n--- records\n%s", want, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestObserveRecordFromEnvoyLine parses access-log lines as Envoy's
// json_format writes them (integer milliseconds, null for missing values)
// and checks every series the record produces.
func TestObserveRecordFromEnvoyLine(t *testing.T) {
	m, reg := newMetrics()
	admin := httptest.NewServer(m.Handler())
	defer admin.Close()
	lines := []string{
		`{"start_time":"2026-11-26T10:00:00.000Z","method":"POST","path":"/api/orders","protocol":"HTTP/1.1","response_code":201,"response_flags":"-","bytes_received":300,"bytes_sent":20,"duration":12,"upstream_service_time":9,"x_forwarded_for":null,"user_agent":"curl","request_id":"r1","authority":"gw","upstream_host":"10.0.0.1:80","upstream_cluster":"default/orders","downstream_remote_address":"127.0.0.1:5000","api_instance":"default/orders-api","route":"create","gateway_id":"gw","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","policy":null,"policy_outcome":null}`,
		`{"start_time":"2026-11-26T10:00:00.000Z","method":"GET","path":"/api/orders","protocol":"HTTP/1.1","response_code":429,"response_flags":"RL","bytes_received":0,"bytes_sent":50,"duration":1,"upstream_service_time":null,"upstream_host":null,"upstream_cluster":"default/orders","api_instance":"default/orders-api","route":"create","trace_id":null,"policy":"rate-limiting-flex","policy_outcome":"denied"}`,
		`{"start_time":"2026-11-26T10:00:00.000Z","method":"GET","path":"/x","protocol":"HTTP/1.1","response_code":404,"response_flags":"NR","bytes_received":0,"bytes_sent":0,"duration":0,"upstream_service_time":null,"upstream_cluster":null,"api_instance":null,"route":null,"trace_id":"00000000000000000000000000000000"}`,
		`{"start_time":"2026-11-26T10:00:00.000Z","method":"GET","path":"/api/orders","protocol":"HTTP/1.1","response_code":0,"response_flags":"DC","bytes_received":0,"bytes_sent":0,"duration":3000,"upstream_service_time":null,"upstream_host":"10.0.0.1:80","upstream_cluster":"default/orders","api_instance":"default/orders-api","route":"create"}`,
	}
	for _, l := range lines {
		rec, err := accesslog.ParseJSON([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		m.ObserveRecord(&rec)
	}
	m.ObserveRecord(nil) // ignored

	fams := scrape(t, admin.URL)
	api := map[string]string{"api": "default/orders-api", "route": "create"}
	for _, c := range []struct {
		method, class string
	}{{"POST", "2xx"}, {"GET", "4xx"}, {"GET", "none"}} {
		l := map[string]string{"api": "default/orders-api", "route": "create", "method": c.method, "code_class": c.class}
		if v := find(t, fams, "flexgw_requests_total", l).GetCounter().GetValue(); v != 1 {
			t.Errorf("requests %v = %v, want 1", l, v)
		}
	}
	if v := find(t, fams, "flexgw_requests_total", map[string]string{"api": "unmatched", "route": "unmatched", "method": "GET", "code_class": "4xx"}).GetCounter().GetValue(); v != 1 {
		t.Errorf("unmatched requests = %v, want 1", v)
	}
	if n := len(fams["flexgw_requests_total"].GetMetric()); n != 4 {
		t.Errorf("%d request series, want 4", n)
	}
	d := find(t, fams, "flexgw_request_duration_seconds", api).GetHistogram()
	if d.GetSampleCount() != 3 || d.GetSampleSum() != 3.013 {
		t.Errorf("request duration count %d sum %v, want 3 and 3.013", d.GetSampleCount(), d.GetSampleSum())
	}
	// Upstream time: the 201 (9 ms) and the client that left while the
	// upstream was connected (host set, no time: 0); not the 429, which
	// never reached an upstream.
	u := find(t, fams, "flexgw_upstream_duration_seconds", map[string]string{"api": "default/orders-api", "route": "create", "service": "default/orders"}).GetHistogram()
	if u.GetSampleCount() != 2 || u.GetSampleSum() != 0.009 {
		t.Errorf("upstream duration count %d sum %v, want 2 and 0.009", u.GetSampleCount(), u.GetSampleSum())
	}
	o := find(t, fams, "flexgw_gateway_overhead_seconds", map[string]string{"api": "default/orders-api"}).GetHistogram()
	if o.GetSampleCount() != 3 || o.GetSampleSum() != 3.004 {
		t.Errorf("overhead count %d sum %v, want 3 and 3.004 (3 ms + 1 ms + 3 s)", o.GetSampleCount(), o.GetSampleSum())
	}
	if v := find(t, fams, "flexgw_request_size_bytes", map[string]string{"api": "default/orders-api"}).GetHistogram().GetSampleSum(); v != 300 {
		t.Errorf("request bytes = %v, want 300", v)
	}
	if v := find(t, fams, "flexgw_response_size_bytes", map[string]string{"api": "default/orders-api"}).GetHistogram().GetSampleSum(); v != 70 {
		t.Errorf("response bytes = %v, want 70", v)
	}
	if v := find(t, fams, "flexgw_policy_decisions_total", map[string]string{"api": "default/orders-api", "policy": "rate-limiting-flex", "outcome": "denied"}).GetCounter().GetValue(); v != 1 {
		t.Errorf("policy denials = %v, want 1", v)
	}

	// Exemplars: the valid trace id only; the all-zero one is no trace.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exemplars []string
	for _, mf := range mfs {
		for _, mm := range mf.GetMetric() {
			for _, b := range mm.GetHistogram().GetBucket() {
				if e := b.GetExemplar(); e != nil {
					for _, lp := range e.GetLabel() {
						exemplars = append(exemplars, mf.GetName()+" "+lp.GetName()+"="+lp.GetValue())
					}
				}
			}
		}
	}
	wantEx := []string{
		"flexgw_gateway_overhead_seconds trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
		"flexgw_request_duration_seconds trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
		"flexgw_upstream_duration_seconds trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
	}
	if strings.Join(exemplars, "\n") != strings.Join(wantEx, "\n") {
		t.Errorf("exemplars:\n%s\nwant:\n%s", strings.Join(exemplars, "\n"), strings.Join(wantEx, "\n"))
	}
}

// TestObserveRecordTraceIDs: only a W3C trace id (32 lowercase hex digits,
// not all zero) becomes an exemplar; anything else in a log line is
// ignored rather than exported.
func TestObserveRecordTraceIDs(t *testing.T) {
	for id, want := range map[string]bool{
		"4bf92f3577b34da6a3ce929d0e0e4736":  true,
		"00000000000000000000000000000001":  true,
		"00000000000000000000000000000000":  false,
		"4BF92F3577B34DA6A3CE929D0E0E4736":  false,
		"4bf92f3577b34da6a3ce929d0e0e473":   false,
		"4bf92f3577b34da6a3ce929d0e0e47366": false,
		"4bf92f3577b34da6a3ce929d0e0e473g":  false,
		"-":                                 false,
	} {
		m, reg := newMetrics()
		m.ObserveRecord(&accesslog.Record{APIInstance: "a", Route: "r", Method: "GET", ResponseCode: 200, TraceID: id})
		got := strings.Contains(dump(t, reg), "trace_id")
		if got != want {
			t.Errorf("trace id %q: exemplar %v, want %v", id, got, want)
		}
	}
}

// TestRecordTimings: the timings handed to the shared observe path are the
// record's own numbers.
func TestRecordTimings(t *testing.T) {
	rec := &accesslog.Record{Duration: 12 * time.Millisecond, UpstreamServiceTime: 9 * time.Millisecond,
		UpstreamCluster: "default/orders", BytesReceived: 3, BytesSent: 4}
	want := observe.Timings{Total: 12 * time.Millisecond, Upstream: 9 * time.Millisecond, Service: "default/orders", RequestBytes: 3, ResponseBytes: 4}
	if got := metrics.RecordTimings(rec); got != want {
		t.Errorf("RecordTimings = %+v, want %+v", got, want)
	}
}

// BenchmarkObserveRecord is the metrics cost of one Envoy access-log line
// once parsed: what the agent adds per tailed line.
func BenchmarkObserveRecord(b *testing.B) {
	for _, withTrace := range []bool{false, true} {
		name := "no-trace"
		rec := &accesslog.Record{APIInstance: "default/orders", Route: "orders-0", Method: "GET", ResponseCode: 200,
			Duration: 3 * time.Millisecond, UpstreamServiceTime: 2 * time.Millisecond, UpstreamHost: "10.0.0.1:80",
			UpstreamCluster: "default/svc", BytesReceived: 100, BytesSent: 900}
		if withTrace {
			name = "trace-id"
			rec.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		}
		b.Run(name, func(b *testing.B) {
			m, _ := newMetrics()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				m.ObserveRecord(rec)
			}
		})
		// The whole per-line cost in the agent: parse, then observe.
		line := rec.AppendJSON(nil)
		b.Run(name+"/with-parse", func(b *testing.B) {
			m, _ := newMetrics()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r, err := accesslog.ParseJSON(line)
				if err != nil {
					b.Fatal(err)
				}
				m.ObserveRecord(&r)
			}
		})
	}
}

func mustRegexp(t *testing.T, src string) *ir.Regexp {
	t.Helper()
	re, err := ir.CompileRegexp(src)
	if err != nil {
		t.Fatal(err)
	}
	return re
}
