package stats

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/flexgw/flexgw/stats/topapi"
)

// topGet is one GET /api/v1/top over a real socket.
type topGet struct {
	status int
	etag   string
	body   []byte
}

func getTop(t *testing.T, url, inm string) topGet {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return topGet{resp.StatusCode, resp.Header.Get("ETag"), body}
}

// A snapshot is fixed for its second: asking again with its ETag gets 304
// and no body, even though requests arrived meanwhile; the next second
// brings a new snapshot with a new tag that counts them.
func TestTopNotModifiedWithinSecond(t *testing.T) {
	c := newClock()
	s := New(Options{Now: c.now})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	request(s.Hooks(), "ns/a", "r", "", 200, time.Millisecond, 0, "")
	url := srv.URL + "/api/v1/top?history=5"

	first := getTop(t, url, "")
	if first.status != http.StatusOK || first.etag == "" || len(first.body) == 0 {
		t.Fatalf("first GET: status %d, etag %q, %d bytes", first.status, first.etag, len(first.body))
	}
	request(s.Hooks(), "ns/a", "r", "", 200, time.Millisecond, 0, "")
	c.add(300 * time.Millisecond)
	again := getTop(t, url, first.etag)
	if again.status != http.StatusNotModified || len(again.body) != 0 || again.etag != first.etag {
		t.Fatalf("same second with If-None-Match: status %d, %d bytes, etag %q (want 304, none, %q)", again.status, len(again.body), again.etag, first.etag)
	}
	// Without the validator the same bytes come back.
	if plain := getTop(t, url, ""); plain.status != http.StatusOK || string(plain.body) != string(first.body) {
		t.Fatalf("same second without If-None-Match: status %d, body changed: %v", plain.status, string(plain.body) != string(first.body))
	}
	// A list of tags, weak or not, matches too.
	if l := getTop(t, url, `"other", W/`+first.etag); l.status != http.StatusNotModified {
		t.Errorf("If-None-Match list: status %d, want 304", l.status)
	}

	c.add(time.Second)
	next := getTop(t, url, first.etag)
	if next.status != http.StatusOK || next.etag == first.etag {
		t.Fatalf("next second: status %d, etag %q (old %q): want 200 with a new tag", next.status, next.etag, first.etag)
	}
	var top topapi.Top
	if err := json.Unmarshal(next.body, &top); err != nil {
		t.Fatal(err)
	}
	if a := findAPI(t, &top, "ns/a"); a.Requests != 2 {
		t.Errorf("next second counts %d requests, want 2", a.Requests)
	}
}

// Different queries are cached apart: one dashboard's expanded routes are
// not served to another that did not ask for them.
func TestTopCachePerQuery(t *testing.T) {
	c := newClock()
	s := New(Options{Now: c.now})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	request(s.Hooks(), "ns/a", "r1", "ns/svc", 200, time.Millisecond, 0, "")
	request(s.Hooks(), "ns/a", "r2", "ns/svc", 200, time.Millisecond, 0, "")

	decode := func(g topGet) *topapi.Top {
		t.Helper()
		var top topapi.Top
		if g.status != http.StatusOK {
			t.Fatalf("status %d", g.status)
		}
		if err := json.Unmarshal(g.body, &top); err != nil {
			t.Fatal(err)
		}
		return &top
	}
	bare := getTop(t, srv.URL+"/api/v1/top", "")
	withRoutes := getTop(t, srv.URL+"/api/v1/top?routes=ns/a", bare.etag)
	// Services come with the routes: both are what an expanded API shows.
	if a := findAPI(t, decode(bare), "ns/a"); len(a.Routes) != 0 || len(a.Services) != 0 || a.RouteCount != 2 {
		t.Errorf("default query carries %d routes and %d services (count %d), want none and a count of 2", len(a.Routes), len(a.Services), a.RouteCount)
	}
	if a := findAPI(t, decode(withRoutes), "ns/a"); len(a.Routes) != 2 || len(a.Services) != 1 {
		t.Errorf("routes=ns/a carries %d routes and %d services, want 2 and 1", len(a.Routes), len(a.Services))
	}
	if bare.etag == withRoutes.etag {
		t.Error("two different bodies share an ETag")
	}
	// Repeated or reordered routes are the same query.
	a := getTop(t, srv.URL+"/api/v1/top?routes=ns/b&routes=ns/a", "")
	b := getTop(t, srv.URL+"/api/v1/top?routes=ns/a&routes=ns/b&routes=ns/a", a.etag)
	if b.status != http.StatusNotModified {
		t.Errorf("reordered routes query: status %d, want 304", b.status)
	}
}

// Many dashboards asking at once share the second's snapshot.
func TestTopConcurrentDashboards(t *testing.T) {
	c := newClock()
	s := New(Options{Now: c.now})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	request(s.Hooks(), "ns/a", "r", "", 200, time.Millisecond, 0, "")
	var wg sync.WaitGroup
	tags := make([]string, 8)
	for i := range tags {
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "/api/v1/top?routes=*")
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			tags[i] = resp.Header.Get("ETag")
		})
	}
	wg.Wait()
	for _, tag := range tags {
		if tag == "" || tag != tags[0] {
			t.Fatalf("dashboards got different snapshots in one second: %q", tags)
		}
	}
}

func TestETagMatch(t *testing.T) {
	for _, c := range []struct {
		header string
		want   bool
	}{
		{`"abc"`, true},
		{`W/"abc"`, true},
		{`"x", "abc"`, true},
		{`*`, true},
		{`"abcd"`, false},
		{`abc`, false},
		{``, false},
	} {
		if got := etagMatch(c.header, `"abc"`); got != c.want {
			t.Errorf("etagMatch(%q) = %v, want %v", c.header, got, c.want)
		}
	}
}

// apis=0 leaves the API list out but the header still totals every API.
func TestTopOmitAPIs(t *testing.T) {
	c := newClock()
	s := New(Options{Now: c.now})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	request(s.Hooks(), "ns/a", "r", "", 200, time.Millisecond, 0, "")
	request(s.Hooks(), "ns/b", "r", "", 503, time.Millisecond, 0, "")
	c.add(time.Second)
	full, lean := getTop(t, srv.URL+"/api/v1/top", ""), getTop(t, srv.URL+"/api/v1/top?apis=0", "")
	var ft, lt topapi.Top
	if err := json.Unmarshal(full.body, &ft); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lean.body, &lt); err != nil {
		t.Fatal(err)
	}
	if len(ft.APIs) != 2 || len(lt.APIs) != 0 {
		t.Errorf("APIs listed: %d with the default query, %d with apis=0 (want 2 and 0)", len(ft.APIs), len(lt.APIs))
	}
	if lt.Header.Totals != ft.Header.Totals || lt.Header.Totals.Requests != 2 {
		t.Errorf("apis=0 totals %+v, full totals %+v", lt.Header.Totals, ft.Header.Totals)
	}
	if bad := getTop(t, srv.URL+"/api/v1/top?apis=no", ""); bad.status != http.StatusBadRequest {
		t.Errorf("apis=no: status %d, want 400", bad.status)
	}
}
