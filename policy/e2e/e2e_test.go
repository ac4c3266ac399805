// Package e2e_test drives the policies through the real built-in data
// plane (dataplane.New + Apply) and a real Redis: the same path a request
// takes in a running gateway, from Local Mode YAML compiled by the
// function the agent serves from (snapshot.LoadDir).
package e2e_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/sharedstore/redistest"
	"github.com/flexgw/flexgw/snapshot"
)

type sink struct {
	mu   sync.Mutex
	recs []accesslog.Record
}

func (s *sink) Write(r *accesslog.Record) {
	s.mu.Lock()
	s.recs = append(s.recs, *r)
	s.mu.Unlock()
}

func (s *sink) count(f func(accesslog.Record) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.recs {
		if f(r) {
			n++
		}
	}
	return n
}

func pol(name string, order int, cfg any) testutil.Policy {
	return testutil.Policy{Name: name, Order: order, Config: cfg}
}

// load builds the snapshot of the configuration rs exactly as the agent
// builds the one it serves (snapshot.LoadDir: compile, check, shape).
func load(t testing.TB, rs ...testutil.Resource) *ir.Snapshot {
	t.Helper()
	s, err := snapshot.LoadDir(testutil.ConfDir(t, rs...), 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// listen is a gateway address on a loopback port that was free a moment ago.
func listen(t testing.TB, scheme string) string {
	return scheme + "://127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
}

// snapshotWith is one API ("api", plain HTTP) in front of up, with
// policies applied inline.
func snapshotWith(t testing.TB, up *httptest.Server, policies ...testutil.Policy) *ir.Snapshot {
	t.Helper()
	return load(t, testutil.APIInstance("api", listen(t, "http"), up.URL, policies...))
}

// start runs one data plane replica and returns its base URL.
func start(t testing.TB, s *ir.Snapshot, shared policy.SharedStore, sk *sink) string {
	t.Helper()
	opts := dataplane.Options{GatewayID: "gw-" + t.Name(), Shared: shared, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if sk != nil {
		opts.AccessLog = sk
	}
	dp := dataplane.New(opts)
	if err := dp.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = dp.Shutdown(ctx)
	})
	addr := dp.Addr(s.Listeners[0].Address())
	if addr == "" {
		t.Fatal("listener not bound")
	}
	return "http://" + addr
}

func upstream(t testing.TB) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

func do(t *testing.T, method, url string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// Two data plane replicas sharing one Redis admit exactly the limit, and
// the access log names the policy that denied.
func TestTwoDataPlaneReplicasShareOneQuota(t *testing.T) {
	srv := redistest.Start(t)
	up, hits := upstream(t)
	limit := pol("rate-limiting-flex", 50, map[string]any{
		"rateLimits": []map[string]any{{"maximumRequests": 5, "timePeriodInMilliseconds": 120000}}, "exposeHeaders": true})
	var urls []string
	sk := &sink{}
	for i := 0; i < 2; i++ {
		// The same configuration but for the port: two replicas on one host.
		s := snapshotWith(t, up, limit)
		store, err := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		urls = append(urls, start(t, s, store, sk))
	}
	var ok, limited atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			switch res := do(t, http.MethodGet, urls[i%2]+"/x"); res.StatusCode {
			case http.StatusOK:
				ok.Add(1)
			case http.StatusTooManyRequests:
				limited.Add(1)
				if res.Header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
			default:
				t.Errorf("status %d", res.StatusCode)
			}
		}(i)
	}
	wg.Wait()
	if ok.Load() != 5 || limited.Load() != 15 || hits.Load() != 5 {
		t.Fatalf("admitted %d, limited %d, upstream %d; want 5, 15, 5", ok.Load(), limited.Load(), hits.Load())
	}
	deadline := time.Now().Add(10 * time.Second)
	for sk.count(func(r accesslog.Record) bool {
		return r.Policy == "rate-limiting-flex" && r.PolicyOutcome == policy.Denied
	}) != 15 {
		if time.Now().After(deadline) {
			t.Fatalf("access log: %d denied records, want 15", sk.count(func(r accesslog.Record) bool { return r.PolicyOutcome == policy.Denied }))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cors-flex runs first even when its order says otherwise, so a preflight
// is answered before JWT validation asks for a token.
func TestCORSRunsBeforeAuthentication(t *testing.T) {
	up, hits := upstream(t)
	s := snapshotWith(t, up,
		pol("jwt-validation-flex", 10, map[string]any{"signingMethod": "hmac", "textKey": "0123456789abcdef0123456789abcdef"}),
		pol("cors-flex", 90, map[string]any{}),
	)
	base := start(t, s, nil, &sink{})
	res := do(t, http.MethodOptions, base+"/x", "Origin", "https://app.example", "Access-Control-Request-Method", "GET")
	if res.StatusCode != http.StatusOK || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight: %d %v", res.StatusCode, res.Header)
	}
	if res := do(t, http.MethodGet, base+"/x", "Origin", "https://app.example"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("request without token: %d, want 400", res.StatusCode)
	}
	if hits.Load() != 0 {
		t.Fatal("upstream reached")
	}
}

// Basic auth and the IP allowlist through the data plane, with the access
// log recording the denying policy.
func TestAuthAndIPListThroughDataPlane(t *testing.T) {
	up, _ := upstream(t)
	sk := &sink{}
	s := snapshotWith(t, up,
		pol("ip-allowlist-flex", 10, map[string]any{"ips": []string{"127.0.0.1"}}),
		pol("http-basic-authentication-flex", 20, map[string]any{"username": "u", "password": "p"}),
	)
	base := start(t, s, nil, sk)
	req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
	req.SetBasicAuth("u", "p")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("valid request: %d", res.StatusCode)
	}
	if res := do(t, http.MethodGet, base+"/", "X-Forwarded-For", "127.0.0.1"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d", res.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sk.count(func(r accesslog.Record) bool {
		return r.Policy == "http-basic-authentication-flex" && r.PolicyOutcome == policy.Denied && r.ResponseCode == 401
	}) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no access-log record of the basic-auth denial")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Redis killed under a running data plane: fail closed with 503 (the
// default), then recover by itself once Redis is back.
func TestRedisOutageThroughDataPlane(t *testing.T) {
	srv := redistest.Start(t)
	up, _ := upstream(t)
	s := snapshotWith(t, up, pol("rate-limiting-flex", 50, map[string]any{
		"rateLimits": []map[string]any{{"maximumRequests": 1000, "timePeriodInMilliseconds": 60000}}}))
	store, err := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{Cooldown: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	sk := &sink{}
	base := start(t, s, store, sk)
	if res := do(t, http.MethodGet, base+"/x"); res.StatusCode != http.StatusOK {
		t.Fatalf("before outage: %d", res.StatusCode)
	}
	srv.Stop()
	if res := do(t, http.MethodGet, base+"/x"); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("during outage: %d, want 503", res.StatusCode)
	}
	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for do(t, http.MethodGet, base+"/x").StatusCode != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("did not recover after Redis returned")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for sk.count(func(r accesslog.Record) bool {
		return r.Policy == "rate-limiting-flex" && r.PolicyOutcome == policy.Error && r.ResponseCode == 503
	}) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no access-log record with outcome error for the outage")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
