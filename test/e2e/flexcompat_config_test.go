package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/sharedstore/redistest"
)

// Flex's Configuration spec.timeouts and spec.circuitBreaker (written as
// Flex's "Configuring Timeouts in Local Mode" and circuit breaker pages
// show them) change what the built-in data plane does: the response
// timeout, the stream idle timeout, the upstream connection idle timeout
// and the circuit breaker. The tracing provider anypoint is accepted and
// the status says why nothing is exported.
func TestFlexConfigurationDefaultsApply(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	slow := startUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	stream := startUpstream(t, "stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "first part\n")
		w.(http.Flusher).Flush()
		select { // then nothing moves on the stream
		case <-r.Context().Done():
		case <-time.After(60 * time.Second):
		}
	})
	held := startUpstream(t, "held", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	})
	// The idle upstream reports when the gateway closes its connection.
	var closed atomic.Int32
	idleLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	idleSrv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "idle ok") }),
		// Far above the 1 s the gateway is configured with, so only the
		// gateway can be the one closing.
		IdleTimeout: 5 * time.Minute,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				closed.Add(1)
			}
		},
	}
	go idleSrv.Serve(idleLn)
	t.Cleanup(func() { idleSrv.Close() })

	pSlow, pStream, pHeld, pIdle := freePort(t), freePort(t), freePort(t), freePort(t)
	at := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
	dir := testutil.ConfDir(t,
		testutil.APIInstance("slow", at(pSlow), slow.URL),
		testutil.Resource{Kind: "ApiInstance", Name: "stream", Spec: fmt.Sprintf(`
			address: %s
			services:
			  upstream:
			    address: %s
			    routes:
			      - config:
			          timeout: 60s
		`, at(pStream), stream.URL)},
		testutil.APIInstance("held", at(pHeld), held.URL),
		testutil.APIInstance("idle", at(pIdle), "http://"+idleLn.Addr().String()),
		testutil.Resource{Kind: "Configuration", Name: "timeouts-config", Spec: `
			timeouts:
			  upstreamConnectionIdleSeconds: 1
			  upstreamResponseSeconds: 1
			  streamIdleSeconds: 1
		`},
		testutil.Configuration("gateway-limits", `
			circuitBreaker:
			  maxRequests: 1
		`),
		testutil.Configuration("tracing", `
			tracing:
			  provider:
			    type: anypoint
			  sampling:
			    client: 100
			    random: 100
			    overall: 100
		`),
	)
	g := startGateway(t, dir)

	t.Run("upstreamResponseSeconds", func(t *testing.T) {
		code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/", pSlow))
		if code != http.StatusGatewayTimeout {
			t.Fatalf("status %d %q, want 504 from the 1 s upstream response timeout", code, body)
		}
	})

	t.Run("streamIdleSeconds", func(t *testing.T) {
		client := &http.Client{Timeout: 45 * time.Second}
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", pStream))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the client gave up first (%v): the gateway kept an idle stream open", err)
		}
		if err == nil {
			t.Fatalf("body ended cleanly (%q); want the stream cut by the idle timeout", b)
		}
		if !strings.HasPrefix(string(b), "first part") {
			t.Errorf("body %q: the part sent before the stall is missing", b)
		}
	})

	t.Run("upstreamConnectionIdleSeconds", func(t *testing.T) {
		if code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/", pIdle)); code != 200 {
			t.Fatalf("status %d %q", code, body)
		}
		// The built-in default keeps an idle upstream connection 30 s;
		// configured to 1 s, the gateway closes it well within 20 s.
		eventually(t, 20*time.Second, func() string {
			if closed.Load() == 0 {
				return "the gateway has not closed its idle upstream connection"
			}
			return ""
		})
	})

	t.Run("circuitBreaker", func(t *testing.T) {
		first := make(chan int, 1)
		go func() {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/hold", pHeld))
			if err != nil {
				first <- 0
				return
			}
			resp.Body.Close()
			first <- resp.StatusCode
		}()
		// Wait until the held request reached the upstream.
		select {
		case <-held.hits:
		case <-time.After(20 * time.Second):
			t.Fatal("the first request never reached the upstream")
		}
		code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/second", pHeld))
		once.Do(func() { close(release) })
		if code != http.StatusServiceUnavailable {
			t.Errorf("second request while one is in flight: status %d %q, want 503 (maxRequests: 1)", code, body)
		}
		if c := <-first; c != 200 {
			t.Errorf("held request: status %d", c)
		}
	})

	t.Run("tracingAnypointStatus", func(t *testing.T) {
		code, body, _ := get(t, g.adminURL("/api/v1/status"))
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		var st struct {
			Components map[string]json.RawMessage `json:"components"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		var tr struct {
			Provider  string `json:"provider"`
			Exporting bool   `json:"exporting"`
			Note      string `json:"note"`
		}
		if err := json.Unmarshal(st.Components["tracing"], &tr); err != nil {
			t.Fatalf("components.tracing: %v in %s", err, body)
		}
		if tr.Provider != "anypoint" || tr.Exporting || !strings.Contains(tr.Note, "Anypoint Monitoring") {
			t.Errorf("tracing status %+v; want provider anypoint, not exporting, with a note saying why", tr)
		}
	})
}

// The rate-limiting and caching pages spell the Redis ACL user "user:";
// the gateway must log in as that user (the default user is disabled).
func TestFlexRedisUserSpelling(t *testing.T) {
	redis := redistest.Start(t, "--user", "default", "off", "--user", "ecomm-user", "on", ">ecomm-pwd-123", "~*", "&*", "+@all")
	up := startUpstream(t, "a", nil)
	port := freePort(t)
	startGateway(t, testutil.ConfDir(t,
		testutil.APIInstance("limited", fmt.Sprintf("http://127.0.0.1:%d", port), up.URL, testutil.Policy{Name: "rate-limiting-flex", Config: `
			rateLimits:
			  - maximumRequests: 2
			    timePeriodInMilliseconds: 600000
			clusterizable: true
		`}),
		testutil.Resource{Kind: "Configuration", Name: "shared-storage-redis", Spec: `
			sharedStorage:
			  redis:
			    address: ` + redis.Addr + `
			    user: ecomm-user
			    password: ecomm-pwd-123
		`},
	))
	var codes []int
	for i := 0; i < 3; i++ {
		code, _, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/x", port))
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[200 200 429]" {
		t.Errorf("statuses %v, want [200 200 429] counted in Redis as ecomm-user", codes)
	}
	// The counters live in Redis, written by the gateway as ecomm-user.
	rc := goredis.NewClient(&goredis.Options{Addr: redis.Addr, Username: "ecomm-user", Password: "ecomm-pwd-123"})
	defer rc.Close()
	keys, err := rc.Keys(context.Background(), "*").Result()
	if err != nil || len(keys) == 0 {
		t.Errorf("no rate-limit counter in Redis (keys %v, err %v): the gateway did not use the shared store", keys, err)
	}
}
