package policy_test

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/policytest"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
	"github.com/flexgw/flexgw/sharedstore"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

func rlConfig(max, periodMs int, extra map[string]any) map[string]any {
	c := map[string]any{"rateLimits": []map[string]any{{"maximumRequests": max, "timePeriodInMilliseconds": periodMs}}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

var bindingSeq atomic.Int64

// uniqueBinding gives each test its own binding: non-clusterizable quotas
// live in process memory, which survives between runs of -count.
func uniqueBinding(p *ir.Policy, t *testing.T) *ir.Policy {
	p.Binding = "default/" + t.Name() + "-" + strconv.FormatInt(bindingSeq.Add(1), 10)
	return p
}

func TestRateLimitLocal(t *testing.T) {
	up := policytest.NewUpstream(t)
	p := uniqueBinding(policytest.Policy("rate-limiting-flex", rlConfig(3, 60000, map[string]any{"exposeHeaders": true, "clusterizable": false})), t)
	g := policytest.NewGateway(t, policy.Env{}, up, p)
	for i := 0; i < 3; i++ {
		r := g.Get(t, "/")
		policytest.WantStatus(t, r, http.StatusOK)
		if got := r.Header.Get("X-Ratelimit-Remaining"); got != strconv.Itoa(2-i) {
			t.Fatalf("request %d: remaining %q", i, got)
		}
		if r.Header.Get("X-Ratelimit-Limit") != "3" {
			t.Fatalf("limit header %q", r.Header.Get("X-Ratelimit-Limit"))
		}
	}
	r := g.Get(t, "/")
	policytest.WantStatus(t, r, http.StatusTooManyRequests)
	policytest.WantErrorBody(t, r, "rate-limiting-flex")
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	if reset, _ := strconv.Atoi(r.Header.Get("X-Ratelimit-Reset")); reset <= 0 || reset > 60000 {
		t.Fatalf("X-Ratelimit-Reset %q", r.Header.Get("X-Ratelimit-Reset"))
	}
	if up.Hits() != 3 {
		t.Fatalf("upstream saw %d requests, want 3", up.Hits())
	}
}

func TestRateLimitKeySelectorGroups(t *testing.T) {
	up := policytest.NewUpstream(t)
	p := uniqueBinding(policytest.Policy("rate-limiting-flex", rlConfig(1, 60000, map[string]any{"keySelector": "#[attributes.headers['x-team']]", "clusterizable": false})), t)
	g := policytest.NewGateway(t, policy.Env{}, up, p)
	policytest.WantStatus(t, g.Get(t, "/", "X-Team", "a"), http.StatusOK)
	policytest.WantStatus(t, g.Get(t, "/", "X-Team", "a"), http.StatusTooManyRequests)
	policytest.WantStatus(t, g.Get(t, "/", "X-Team", "b"), http.StatusOK)
	// Headers are absent unless exposeHeaders is set.
	if r := g.Get(t, "/", "X-Team", "c"); r.Header.Get("X-Ratelimit-Limit") != "" {
		t.Fatal("x-ratelimit headers exposed without exposeHeaders")
	}
}

func TestRateLimitMultipleLimits(t *testing.T) {
	up := policytest.NewUpstream(t)
	cfg := map[string]any{"clusterizable": false, "rateLimits": []map[string]any{
		{"maximumRequests": 5, "timePeriodInMilliseconds": 60000},
		{"maximumRequests": 2, "timePeriodInMilliseconds": 60000},
	}}
	g := policytest.NewGateway(t, policy.Env{}, up, uniqueBinding(policytest.Policy("rate-limiting-flex", cfg), t))
	policytest.WantStatus(t, g.Get(t, "/"), http.StatusOK)
	policytest.WantStatus(t, g.Get(t, "/"), http.StatusOK)
	policytest.WantStatus(t, g.Get(t, "/"), http.StatusTooManyRequests)
}

func newRedisStoreB(t testing.TB, addr string) *sharedstore.Redis { return newRedisStore(t, addr) }

func newRedisStore(t testing.TB, addr string) *sharedstore.Redis {
	s, err := sharedstore.NewRedis(&ir.Redis{Address: addr}, sharedstore.RedisOptions{Cooldown: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// twoReplicas starts two gateways (replicas), each with its own Redis
// client to srv, enforcing one rate limit of max per 120 s, and sends
// workers×each requests from concurrent workers alternating between them.
// It returns the admitted and limited counts and the upstream's hits.
func twoReplicas(t *testing.T, max, workers, each int) (ok, limited int32, hits int) {
	srv := redistest.Start(t)
	up := policytest.NewUpstream(t)
	p := uniqueBinding(policytest.Policy("rate-limiting-flex", rlConfig(max, 120000, nil)), t)
	gws := []*policytest.Gateway{
		policytest.NewGateway(t, policy.Env{Shared: newRedisStore(t, srv.Addr)}, up, p),
		policytest.NewGateway(t, policy.Env{Shared: newRedisStore(t, srv.Addr)}, up, p),
	}
	var okN, limitedN atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(g *policytest.Gateway) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				switch r := g.Get(t, "/"); r.Status {
				case http.StatusOK:
					okN.Add(1)
				case http.StatusTooManyRequests:
					limitedN.Add(1)
				default:
					t.Errorf("unexpected status %d %q", r.Status, r.Body)
					return
				}
			}
		}(gws[w%2])
	}
	wg.Wait()
	return okN.Load(), limitedN.Load(), up.Hits()
}

// Two replicas (two gateways, each with its own Redis client) share one
// quota: 40 concurrent requests spread across both admit exactly 10.
func TestRateLimitTwoReplicasShareRedis(t *testing.T) {
	ok, limited, hits := twoReplicas(t, 10, 40, 1)
	if ok != 10 || limited != 30 {
		t.Fatalf("admitted %d, limited %d; want 10 and 30", ok, limited)
	}
	if hits != 10 {
		t.Fatalf("upstream saw %d", hits)
	}
}

// Two replicas with a limit large enough that each leases quota from
// Redis (sharedstore.Redis.Acquire): 1,312 concurrent requests spread over
// both never admit more than the limit, and leave unused at most what each
// replica's last lease held (< limit/64 each, docs/policies.md).
func TestRateLimitTwoReplicasLeasedQuota(t *testing.T) {
	const limit = 1000
	ok, limited, hits := twoReplicas(t, limit, 16, 82)
	if ok > limit || ok < limit-2*(limit/64) {
		t.Fatalf("admitted %d (limited %d); want between %d and %d", ok, limited, limit-2*(limit/64), limit)
	}
	if hits != int(ok) {
		t.Fatalf("upstream saw %d, admitted %d", hits, ok)
	}
}

func TestRateLimitRedisDownFailClosedThenRecovers(t *testing.T) {
	srv := redistest.Start(t)
	up := policytest.NewUpstream(t)
	p := uniqueBinding(policytest.Policy("rate-limiting-flex", rlConfig(100, 60000, nil)), t)
	g := policytest.NewGateway(t, policy.Env{Shared: newRedisStore(t, srv.Addr)}, up, p)
	policytest.WantStatus(t, g.Get(t, "/"), http.StatusOK)

	srv.Stop()
	r := g.Get(t, "/")
	policytest.WantStatus(t, r, http.StatusServiceUnavailable)
	policytest.WantErrorBody(t, r, "rate-limiting-flex")
	if !contains(r.Body, "shared storage") {
		t.Fatalf("body %q does not say why", r.Body)
	}

	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for g.Get(t, "/").Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("rate limit did not recover after Redis came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRateLimitRedisDownFailOpen(t *testing.T) {
	srv := redistest.Start(t)
	up := policytest.NewUpstream(t)
	p := uniqueBinding(policytest.Policy("rate-limiting-flex", rlConfig(1, 60000, map[string]any{"failOpen": true})), t)
	g := policytest.NewGateway(t, policy.Env{Shared: newRedisStore(t, srv.Addr)}, up, p)
	srv.Stop()
	for i := 0; i < 3; i++ {
		policytest.WantStatus(t, g.Get(t, "/"), http.StatusOK)
	}
	if !contains(joinDecisions(g.Rec.All()), "rate-limiting-flex=error") {
		t.Fatalf("decisions %v: want an error outcome recorded", g.Rec.All())
	}
}

func joinDecisions(d []string) string {
	s := ""
	for _, x := range d {
		s += x + " "
	}
	return s
}

func TestRateLimitValidation(t *testing.T) {
	for _, tc := range []struct{ cfg, field string }{
		{`{}`, "config.rateLimits"},
		{`{"rateLimits":[{"maximumRequests":0,"timePeriodInMilliseconds":1000}]}`, "config.rateLimits[0].maximumRequests"},
		{`{"rateLimits":[{"maximumRequests":1,"timePeriodInMilliseconds":-1}]}`, "config.rateLimits[0].timePeriodInMilliseconds"},
		{`{"rateLimits":[{"maximumRequests":"x","timePeriodInMilliseconds":1}]}`, "config.rateLimits[0].maximumRequests: must be an integer, not string"},
		{`{"rateLimits":[{"maximumRequests":1,"timePeriodInMilliseconds":1},{"maximumRequests":1.5,"timePeriodInMilliseconds":1}]}`, "config.rateLimits[1].maximumRequests: must be an integer, not number 1.5"},
		{`{"rateLimits":"lots"}`, "config.rateLimits: must be a list, not string"},
		{`{"rateLimits":[{"maximumRequests":1,"timePeriodInMilliseconds":1}],"keySelector":"#[attributes.headers['x']"}`, "config.keySelector"},
	} {
		err := policy.Check(policytest.Policy("rate-limiting-flex", tc.cfg))
		if err == nil || !contains(err.Error(), tc.field) {
			t.Errorf("%s: error %v, want one naming %s", tc.cfg, err, tc.field)
		}
	}
}

// A JWT claim keys the quota: each subject has its own.
func TestRateLimitKeyedByJWTClaim(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	up := policytest.NewUpstream(t)
	jwtP := policytest.Policy("jwt-validation-flex", map[string]any{"signingMethod": "hmac", "textKey": string(secret)})
	rl := uniqueBinding(policytest.Policy("rate-limiting-flex", rlConfig(1, 60000, map[string]any{"clusterizable": false, "keySelector": "#[authentication.properties.claims.sub]"})), t)
	g := policytest.NewGateway(t, policy.Env{}, up, jwtP, rl)
	alice := bearer(signJWT(t, "HS256", "", goodClaims(), secret))
	bob := bearer(signJWT(t, "HS256", "", with(goodClaims(), "sub", "bob"), secret))
	policytest.WantStatus(t, g.Get(t, "/", alice...), http.StatusOK)
	policytest.WantStatus(t, g.Get(t, "/", alice...), http.StatusTooManyRequests)
	policytest.WantStatus(t, g.Get(t, "/", bob...), http.StatusOK)
}
