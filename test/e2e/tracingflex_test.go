package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/testutil"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is a stand-in OTLP/HTTP collector (protobuf on /v1/traces,
// as the OTLP specification defines it): it keeps each exported span's
// name and attributes.
type otlpReceiver struct {
	url   string
	mu    sync.Mutex
	spans []receivedSpan
}

type receivedSpan struct {
	name  string
	attrs map[string]string
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &otlpReceiver{url: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		var req collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rcv.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					a := map[string]string{}
					for _, kv := range sp.GetAttributes() {
						a[kv.GetKey()] = kv.GetValue().GetStringValue()
					}
					rcv.spans = append(rcv.spans, receivedSpan{name: sp.GetName(), attrs: a})
				}
			}
		}
		rcv.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return rcv
}

func (r *otlpReceiver) all() []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedSpan(nil), r.spans...)
}

// tracing-flex through the binary: the global tracing samples nothing
// (Flex's example: 0/0/0 with per-API sampling by the policy); the API
// with tracing-flex at 100% exports its server span, named by spanName
// and labelled, to the OTLP collector; the API without it exports none.
func TestTracingFlexThroughBinary(t *testing.T) {
	rcv := startOTLPReceiver(t)
	up := startUpstream(t, "up", nil)
	pTraced, pPlain := freePort(t), freePort(t)
	at := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
	startGateway(t, testutil.ConfDir(t,
		testutil.APIInstance("traced", at(pTraced), up.URL, testutil.Policy{Name: "tracing-flex", Config: `
			sampling:
			  client: 100
			  random: 100
			  overall: 100
			spanName: traced-api
			labels:
			  - name: team
			    type: literal
			    keyName: team
			    defaultValue: checkout
		`}),
		testutil.APIInstance("plain", at(pPlain), up.URL),
		testutil.Configuration("tracing", `
			tracing:
			  provider:
			    type: opentelemetry
			    properties:
			      address: `+rcv.url+`
			  sampling:
			    client: 0
			    random: 0
			    overall: 0
		`),
	))
	for i := 0; i < 3; i++ {
		if code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/p", pPlain)); code != 200 {
			t.Fatalf("plain: %d %q", code, body)
		}
		if code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/t", pTraced)); code != 200 {
			t.Fatalf("traced: %d %q", code, body)
		}
	}
	eventually(t, 45*time.Second, func() string {
		n := 0
		for _, s := range rcv.all() {
			if s.name == "traced-api" && s.attrs["team"] == "checkout" {
				n++
			}
		}
		if n < 3 {
			return fmt.Sprintf("%d of 3 traced-api server spans with label team=checkout exported (got %d spans)", n, len(rcv.all()))
		}
		return ""
	})
	for _, s := range rcv.all() {
		if s.attrs["flexgw.api"] == "default/plain" {
			t.Errorf("a span of the API without tracing-flex was exported (global sampling is 0%%): %+v", s)
		}
	}
}
