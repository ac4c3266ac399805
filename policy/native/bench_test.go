package native_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/policy"
)

type nopRecorder struct{}

func (nopRecorder) Decide(string, string) {}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkServicePolicies is the per-request cost, on the built-in data
// plane, of native-ext-authz-flex (real gRPC and HTTP authorization
// services) and native-ext-proc-flex (a real gRPC processor), round trips
// over loopback included.
func BenchmarkServicePolicies(b *testing.B) {
	as := newAuthzServer(b)
	ps := newProcServer(b)
	authzHTTP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	b.Cleanup(authzHTTP.Close)
	body1K := strings.Repeat("0123456789abcdef", 64)
	cases := []struct {
		name, policy string
		cfg          any
		hdr          []string
		body         string
	}{
		{"native-ext-authz-flex/grpc", "native-ext-authz-flex", map[string]any{"uri": "h2://" + as.addr}, []string{"access-token", "good"}, ""},
		{"native-ext-authz-flex/http", "native-ext-authz-flex", map[string]any{"uri": authzHTTP.URL, "serverType": "http"}, nil, ""},
		{"native-ext-proc-flex/headers", "native-ext-proc-flex", map[string]any{"uri": "h2://" + ps.addr}, nil, ""},
		{"native-ext-proc-flex/buffered-1KiB", "native-ext-proc-flex", map[string]any{"uri": "h2://" + ps.addr, "requestBodyMode": "buffered", "responseBodyMode": "buffered"}, nil, body1K},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			h := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				_, _ = io.WriteString(w, "upstream")
			}))
			p := mkPolicy(c.policy, c.cfg)
			d, _ := policy.Lookup(p.Name)
			mw, err := d.Build(policy.Env{API: testAPI()}, p)
			if err != nil {
				b.Fatal(err)
			}
			h = mw(h)
			body := []byte(c.body)
			req := httptest.NewRequest(http.MethodPost, "http://gw/orders", nil)
			req.RemoteAddr = "127.0.0.1:40000"
			for i := 0; i+1 < len(c.hdr); i += 2 {
				req.Header.Set(c.hdr[i], c.hdr[i+1])
			}
			req = req.WithContext(policy.WithRecorder(req.Context(), nopRecorder{}))
			run := func(w http.ResponseWriter) {
				r := req.Clone(req.Context())
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.ContentLength = int64(len(body))
				h.ServeHTTP(w, r)
			}
			rec := httptest.NewRecorder()
			if run(rec); rec.Code != http.StatusOK { // warms connections
				b.Fatalf("%s: status %d, want 200: %s", c.name, rec.Code, rec.Body)
			}
			w := &discardWriter{h: http.Header{}}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				clear(w.h)
				run(w)
			}
		})
	}
}
