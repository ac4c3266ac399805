package rls_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	ratelimitcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/policy/rls"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

func serve(t *testing.T, store policy.SharedStore) rlsv3.RateLimitServiceClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	rls.New(store, nil).Register(g)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return rlsv3.NewRateLimitServiceClient(conn)
}

func request(bucket, limit, key string) *rlsv3.RateLimitRequest {
	entries := []*ratelimitcommonv3.RateLimitDescriptor_Entry{
		{Key: policy.DescriptorBucket, Value: bucket},
		{Key: policy.DescriptorLimit, Value: limit},
	}
	if key != "" {
		entries = append(entries, &ratelimitcommonv3.RateLimitDescriptor_Entry{Key: policy.DescriptorKey, Value: key})
	}
	return &rlsv3.RateLimitRequest{Domain: policy.RateLimitDomain, Descriptors: []*ratelimitcommonv3.RateLimitDescriptor{{Entries: entries}}}
}

// The RLS (Envoy) and the built-in middleware count in one Redis window:
// two requests through the built-in data plane, then the RLS sees the
// quota exhausted.
func TestRLSSharesQuotaWithBuiltInDataPlane(t *testing.T) {
	srv := redistest.Start(t)
	store, err := sharedstore.NewRedis(&ir.Redis{Address: srv.Addr}, sharedstore.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	client := serve(t, store)

	cfg, _ := json.Marshal(map[string]any{"rateLimits": []map[string]any{{"maximumRequests": 3, "timePeriodInMilliseconds": 60000}},
		"keySelector": "#[attributes.headers['x-client']]"})
	p := &ir.Policy{Name: "rate-limiting-flex", Binding: "default/rl", Config: cfg}
	api := &ir.API{Name: "api", Namespace: "default"}
	d, _ := policy.Lookup(p.Name)
	mw, err := d.Build(policy.Env{API: api, Shared: store}, p)
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer gw.Close()
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest(http.MethodGet, gw.URL, nil)
		req.Header.Set("X-Client", "c1")
		res, err := gw.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("built-in request %d: %d", i, res.StatusCode)
		}
	}

	bucket := policy.RateLimitBucket(api.Key(), p.Binding, 0, 3, 60000)
	ctx := context.Background()
	r, err := client.ShouldRateLimit(ctx, request(bucket, "3/60000", "c1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.OverallCode != rlsv3.RateLimitResponse_OK || r.Statuses[0].LimitRemaining != 0 || r.Statuses[0].CurrentLimit.GetUnit() != rlsv3.RateLimitResponse_RateLimit_MINUTE {
		t.Fatalf("third request: %v", r)
	}
	r, _ = client.ShouldRateLimit(ctx, request(bucket, "3/60000", "c1"))
	if r.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("fourth request: %v", r)
	}
	if reset := r.Statuses[0].DurationUntilReset.AsDuration(); reset <= 0 || reset > time.Minute {
		t.Fatalf("reset %v", reset)
	}
	// Another key has its own quota.
	r, _ = client.ShouldRateLimit(ctx, request(bucket, "3/60000", "c2"))
	if r.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Fatalf("other key: %v", r)
	}

	// Redis down: UNAVAILABLE, so Envoy applies failure_mode_deny.
	srv.Stop()
	_, err = client.ShouldRateLimit(ctx, request(bucket, "3/60000", "c3"))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("redis down: %v, want Unavailable", err)
	}
}

func TestRLSIgnoresForeignDescriptorsAndRejectsBadLimits(t *testing.T) {
	client := serve(t, sharedstore.NewMemory())
	ctx := context.Background()
	r, err := client.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "other", Descriptors: []*ratelimitcommonv3.RateLimitDescriptor{{
		Entries: []*ratelimitcommonv3.RateLimitDescriptor_Entry{{Key: "generic_key", Value: "x"}},
	}}})
	if err != nil || r.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Fatalf("foreign descriptor: %v %v", r, err)
	}
	if _, err := client.ShouldRateLimit(ctx, request("b", "x/1", "")); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad limit: %v", err)
	}
	for i := 0; i < 2; i++ {
		r, _ = client.ShouldRateLimit(ctx, request("mem:", "1/1000", ""))
	}
	if r.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT || r.Statuses[0].CurrentLimit.GetUnit() != rlsv3.RateLimitResponse_RateLimit_SECOND {
		t.Fatalf("memory store: %v", r)
	}
}
