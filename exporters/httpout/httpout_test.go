package httpout

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters"
)

type request struct {
	header http.Header
	body   []byte
}

// receiver is a real HTTP server on a loopback port recording requests;
// fail, when set, answers a request with that status instead.
func receiver(t *testing.T, fail func(n int) int) (*httptest.Server, func() []request) {
	var mu sync.Mutex
	var reqs []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			z, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			rd = z
		}
		b, _ := io.ReadAll(rd)
		mu.Lock()
		n := len(reqs)
		reqs = append(reqs, request{r.Header.Clone(), b})
		mu.Unlock()
		if fail != nil {
			if code := fail(n); code != 0 {
				w.WriteHeader(code)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), reqs...)
	}
}

func hostPort(t *testing.T, srv *httptest.Server) (string, string) {
	u, _ := url.Parse(srv.URL)
	return u.Hostname(), u.Port()
}

func events(n int) []exporters.Event {
	out := make([]exporters.Event, n)
	for i := range out {
		out[i] = exporters.Event{Time: time.Unix(1700000000, int64(i)*1e6), Kind: exporters.Access,
			JSON: []byte(`{"method":"GET","path":"/x","response_code":200,"i":` + string(rune('0'+i%10)) + `}`)}
	}
	return out
}

// TestDynatraceExample sends as Flex's Dynatrace example configures it:
// format json, headers given as a list, date as ISO 8601.
func TestDynatraceExample(t *testing.T) {
	srv, got := receiver(t, nil)
	host, port := hostPort(t, srv)
	x, err := New("dynatrace", map[string]string{
		"host": host, "Port": port, "allow_duplicated_headers": "false",
		"header": "Content-Type application/json; charset=utf-8\nAuthorization Api-Token tok-123",
		"URI":    "/api/v2/logs/ingest", "Format": "json", "json_date_key": "timestamp", "json_date_format": "iso8601",
		"tls": "off", "compress": "gzip",
	}, exporters.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Export(context.Background(), events(3)); err != nil {
		t.Fatal(err)
	}
	reqs := got()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	h := reqs[0].header
	if h.Get("Authorization") != "Api-Token tok-123" || h.Values("Content-Type")[0] != "application/json; charset=utf-8" || len(h.Values("Content-Type")) != 1 {
		t.Errorf("headers %v", h)
	}
	var recs []map[string]any
	if err := json.Unmarshal(reqs[0].body, &recs); err != nil {
		t.Fatalf("body %s: %v", reqs[0].body, err)
	}
	if len(recs) != 3 || recs[0]["timestamp"] != "2023-11-14T22:13:20.000000Z" || recs[2]["path"] != "/x" {
		t.Fatalf("records %v", recs)
	}
}

// TestJSONLinesSplitAndBasicAuth: json_lines bodies split at
// max_body_bytes; every record arrives once, with basic auth and the
// default "date" key as a double.
func TestJSONLinesSplitAndBasicAuth(t *testing.T) {
	srv, got := receiver(t, nil)
	host, port := hostPort(t, srv)
	x, err := New("h", map[string]string{"host": host, "port": port, "uri": "/ingest?src=gw", "format": "json_lines",
		"http_user": "u", "http_passwd": "p", "max_body_bytes": "600"}, exporters.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Export(context.Background(), events(40)); err != nil {
		t.Fatal(err)
	}
	lines := 0
	for _, r := range got() {
		if u, p, _ := (&http.Request{Header: r.header}).BasicAuth(); u != "u" || p != "p" {
			t.Errorf("basic auth %q %q", u, p)
		}
		if len(r.body) > 600+200 {
			t.Errorf("body of %d bytes over max_body_bytes", len(r.body))
		}
		for _, l := range strings.Split(strings.TrimSpace(string(r.body)), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			if d, ok := m["date"].(float64); !ok || d < 1700000000 {
				t.Fatalf("date %v", m["date"])
			}
			lines++
		}
	}
	if lines != 40 || len(got()) < 2 {
		t.Fatalf("%d lines in %d requests", lines, len(got()))
	}
}

// TestFailedRequestRetriedAlone: of a split batch, a request answered 503
// is reported failed and retryable; the others are confirmed; a 400 is
// not retryable.
func TestFailedRequestRetriedAlone(t *testing.T) {
	srv, _ := receiver(t, func(n int) int {
		switch n {
		case 1:
			return 503
		case 2:
			return 400
		}
		return 0
	})
	host, port := hostPort(t, srv)
	x, err := New("h", map[string]string{"host": host, "port": port, "format": "json_lines", "max_body_bytes": "300"}, exporters.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []exporters.Outcome
	x.ExportRequests(context.Background(), events(12), func(o exporters.Outcome) { outcomes = append(outcomes, o) })
	if len(outcomes) < 4 {
		t.Fatalf("%d outcomes", len(outcomes))
	}
	for i, o := range outcomes {
		switch i {
		case 1:
			if o.Err == nil || !exporters.AsError(o.Err).Retryable {
				t.Errorf("request 2: %v, want a retryable failure", o.Err)
			}
		case 2:
			if o.Err == nil || exporters.AsError(o.Err).Retryable {
				t.Errorf("request 3: %v, want a final failure", o.Err)
			}
		default:
			if o.Err != nil {
				t.Errorf("request %d: %v", i+1, o.Err)
			}
		}
	}
}

func TestRejectsBadParameters(t *testing.T) {
	for _, tc := range []struct {
		params map[string]string
		want   string
	}{
		{map[string]string{"host": "h"}, "msgpack (Fluent Bit's default) is not supported"},
		{map[string]string{"host": "h", "format": "gelf"}, `"gelf" is not supported`},
		{map[string]string{"host": "h", "format": "json", "header": "NoValueSecret"}, "entry 1 is not"},
		{map[string]string{"host": "h", "format": "json", "compress": "zstd"}, `"zstd" is not supported`},
		{map[string]string{"host": "h", "format": "json", "json_date_format": "rfc"}, "json_date_format"},
		{map[string]string{"host": "h", "format": "json", "proxy": "http://p"}, "proxy"},
	} {
		_, err := New("h", tc.params, exporters.Settings{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to say %q", tc.params, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "Secret") {
			t.Errorf("error quotes the header value: %v", err)
		}
	}
}
