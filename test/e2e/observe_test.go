package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/tui/tuitest"
)

// `flexgw top --once` against a live gateway with traffic shows the API
// with a non-zero request rate, and /metrics exposes the request counters.
func TestTopOnceAndMetrics(t *testing.T) {
	up := startUpstream(t, "a", nil)
	port := freePort(t)
	g := startGateway(t, writeConfig(t, map[string]string{"api.yaml": inlineAPI("watched", port, "", up.URL)}))
	for i := 0; i < 50; i++ {
		if code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/x", port)); code != 200 {
			t.Fatalf("status %d %s", code, body)
		}
	}
	eventually(t, 15*time.Second, func() string {
		out, err := exec.Command(flexgwBin, "top", "--once", "--admin", "http://"+g.admin, "--width", "160").CombinedOutput()
		if err != nil {
			return fmt.Sprintf("top --once: %v\n%s", err, out)
		}
		rps, ok := tuitest.APIRPS(string(out), "default/watched")
		if !ok || rps <= 0 {
			return fmt.Sprintf("API row rps=%v found=%v in frame:\n%s", rps, ok, out)
		}
		return ""
	})

	_, body, _ := get(t, g.adminURL("/metrics"))
	for _, want := range []string{
		`flexgw_requests_total{api="default/watched"`,
		"flexgw_request_duration_seconds_bucket",
		"flexgw_config_reloads_total",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// The kernel probe runs inside the real gateway (CI runs as root on a
// kernel with BTF): upstream connects made by the gateway are measured and
// exposed under the service name from the config.
func TestKernelProbeInGateway(t *testing.T) {
	up := startUpstream(t, "a", nil)
	port := freePort(t)
	g := startGateway(t, writeConfig(t, map[string]string{"api.yaml": inlineAPI("probed", port, "", up.URL)}), "--ebpf", "on")
	// Each request on a fresh client connection; the gateway reuses its
	// upstream connection, so at least one upstream connect is measured.
	for i := 0; i < 20; i++ {
		if code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/x", port)); code != 200 {
			t.Fatalf("status %d %s", code, body)
		}
	}
	eventually(t, 20*time.Second, func() string {
		_, body, _ := get(t, g.adminURL("/metrics"))
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "flexgw_tcp_connect_duration_seconds_count{") &&
				strings.Contains(line, `service="default/probed/backend"`) && !strings.HasSuffix(line, " 0") {
				return ""
			}
		}
		return "no measured upstream connect for default/probed/backend in /metrics"
	})
	code, body, _ := get(t, g.adminURL("/api/v1/ebpf"))
	if code != 200 || !strings.Contains(body, up.Addr) {
		t.Errorf("/api/v1/ebpf = %d, want the upstream %s in %s", code, up.Addr, body)
	}
}

// With --admin-token the admin API needs the bearer token (but /live and
// /ready stay open for probes), and `flexgw top --token` uses it.
func TestAdminToken(t *testing.T) {
	up := startUpstream(t, "a", nil)
	port := freePort(t)
	g := startGateway(t, writeConfig(t, map[string]string{"api.yaml": inlineAPI("guarded", port, "", up.URL)}), "--admin-token", "s3cret")
	if code, _, _ := get(t, g.adminURL("/ready")); code != 200 {
		t.Errorf("/ready without token = %d, want 200", code)
	}
	if code, _, _ := get(t, g.adminURL("/api/v1/status")); code != 401 {
		t.Errorf("/api/v1/status without token = %d, want 401", code)
	}
	if code, _, _ := get(t, g.adminURL("/metrics"), "Authorization", "Bearer wrong"); code != 401 {
		t.Errorf("/metrics with a wrong token = %d, want 401", code)
	}
	if code, _, _ := get(t, g.adminURL("/api/v1/status"), "Authorization", "Bearer s3cret"); code != 200 {
		t.Errorf("/api/v1/status with the token = %d, want 200", code)
	}
	if out, err := exec.Command(flexgwBin, "top", "--once", "--admin", "http://"+g.admin, "--token", "s3cret").CombinedOutput(); err != nil || !strings.Contains(string(out), "default/guarded") {
		t.Errorf("top --once --token: %v\n%s", err, out)
	}
	if out, err := exec.Command(flexgwBin, "top", "--once", "--admin", "http://"+g.admin).CombinedOutput(); err == nil {
		t.Errorf("top --once without the token succeeded:\n%s", out)
	}
}

// kernelEndpoint is the part of /api/v1/ebpf's endpoint the shared-address
// test reads.
type kernelEndpoint struct {
	Service    string   `json:"service"`
	Endpoint   string   `json:"endpoint"`
	Addresses  []string `json:"addresses"`
	Shared     bool     `json:"shared"`
	SharedWith []struct {
		Service  string `json:"service"`
		Endpoint string `json:"endpoint"`
	} `json:"sharedWith"`
	Connects uint64 `json:"connects"`
}

func kernelEndpoints(t *testing.T, g *gateway) map[string]kernelEndpoint {
	t.Helper()
	code, body, _ := get(t, g.adminURL("/api/v1/ebpf"))
	var snap struct {
		Endpoints []kernelEndpoint `json:"endpoints"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &snap) != nil {
		t.Fatalf("/api/v1/ebpf = %d %s", code, body)
	}
	out := map[string]kernelEndpoint{}
	for _, e := range snap.Endpoints {
		out[e.Service+" "+e.Endpoint] = e
	}
	return out
}

// The kernel counts per address, the configuration names endpoints: two
// APIs whose upstreams resolve to one address (localhost:A and
// 127.0.0.1:A) both show that address's numbers, marked shared with each
// other, in /api/v1/ebpf, /api/v1/top, /metrics and `flexgw top`; an API
// with an address of its own is not marked. A reload that adds an
// endpoint resolving to that address (a host name, resolved at reload)
// marks it shared from then on.
func TestKernelProbeSharedAddresses(t *testing.T) {
	upA, upB := startUpstream(t, "a", nil), startUpstream(t, "b", nil)
	portA, portB := upA.Addr[strings.LastIndexByte(upA.Addr, ':')+1:], upB.Addr[strings.LastIndexByte(upB.Addr, ':')+1:]
	p1, p2, p3, p4 := freePort(t), freePort(t), freePort(t), freePort(t)
	dir := writeConfig(t, map[string]string{
		"one.yaml":   inlineAPI("one", p1, "", "http://localhost:"+portA),
		"two.yaml":   inlineAPI("two", p2, "", upA.URL),
		"three.yaml": inlineAPI("three", p3, "", upB.URL),
	})
	g := startGateway(t, dir, "--ebpf", "on")
	for _, port := range []int{p1, p2, p3} {
		for i := 0; i < 5; i++ {
			if code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/x", port)); code != 200 {
				t.Fatalf("port %d: status %d %s", port, code, body)
			}
		}
	}
	one, two, three := "default/one/backend localhost:"+portA, "default/two/backend "+upA.Addr, "default/three/backend "+upB.Addr
	var eps map[string]kernelEndpoint
	eventually(t, 20*time.Second, func() string {
		eps = kernelEndpoints(t, g)
		if eps[one].Connects == 0 || eps[two].Connects == 0 || eps[three].Connects == 0 {
			return fmt.Sprintf("want connects on all three endpoints: %+v", eps)
		}
		return ""
	})
	if e := eps[one]; !e.Shared || len(e.SharedWith) != 1 || e.SharedWith[0].Service != "default/two/backend" || !slices.Contains(e.Addresses, upA.Addr) {
		t.Errorf("localhost endpoint %+v, want shared with default/two/backend on %s", e, upA.Addr)
	}
	if e := eps[two]; !e.Shared || len(e.SharedWith) != 1 || e.SharedWith[0].Endpoint != "localhost:"+portA {
		t.Errorf("127.0.0.1 endpoint %+v, want shared with localhost:%s", e, portA)
	}
	if e := eps[three]; e.Shared || len(e.SharedWith) != 0 || !slices.Equal(e.Addresses, []string{upB.Addr}) {
		t.Errorf("own endpoint %+v, want not shared", e)
	}
	// Both gateways' pools connected to A; the 127.0.0.1 row counts them
	// all and the localhost row at least as many (it adds ::1, if any).
	if eps[two].Connects < 2 || eps[one].Connects < eps[two].Connects {
		t.Errorf("connects: localhost %d, 127.0.0.1 %d; want both pools' connects on the shared address", eps[one].Connects, eps[two].Connects)
	}

	_, body, _ := get(t, g.adminURL("/metrics"))
	if !strings.Contains(body, fmt.Sprintf(`flexgw_tcp_connect_duration_seconds_count{endpoint=%q,service="default/one/backend,default/two/backend"}`, upA.Addr)) {
		t.Errorf("/metrics has no series naming both services for the shared address %s", upA.Addr)
	}

	var top struct {
		Upstreams []struct {
			Service, Endpoint string
			Kernel            *struct{ Shared bool }
		} `json:"upstreams"`
	}
	_, body, _ = get(t, g.adminURL("/api/v1/top"))
	if err := json.Unmarshal([]byte(body), &top); err != nil {
		t.Fatal(err)
	}
	shared := map[string]bool{}
	for _, u := range top.Upstreams {
		if u.Kernel != nil {
			shared[u.Service+" "+u.Endpoint] = u.Kernel.Shared
		}
	}
	if want := map[string]bool{one: true, two: true, three: false}; !maps.Equal(shared, want) {
		t.Errorf("/api/v1/top upstream shared marks %v, want %v", shared, want)
	}

	marks := func() map[string]bool {
		out, err := exec.Command(flexgwBin, "top", "--once", "--admin", "http://"+g.admin, "--width", "200").CombinedOutput()
		if err != nil {
			t.Fatalf("top --once: %v\n%s", err, out)
		}
		m := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && strings.HasPrefix(f[0], "default/") && strings.HasSuffix(f[0], "/backend") {
				m[f[0]] = len(f) > 2 && f[2] == "⇄"
			}
		}
		return m
	}
	if got, want := marks(), map[string]bool{"default/one/backend": true, "default/two/backend": true, "default/three/backend": false}; !maps.Equal(got, want) {
		t.Errorf("flexgw top marks %v, want %v", got, want)
	}

	// A reload adds an endpoint whose host name resolves to B's address:
	// three's address is shared from then on.
	writeFile(t, dir+"/four.yaml", inlineAPI("four", p4, "", "http://localhost:"+portB))
	eventually(t, 20*time.Second, func() string {
		eps = kernelEndpoints(t, g)
		e := eps[three]
		if !e.Shared || len(e.SharedWith) != 1 || e.SharedWith[0].Service != "default/four/backend" {
			return fmt.Sprintf("after the reload %s = %+v, want shared with default/four/backend", three, e)
		}
		return ""
	})
	if got := marks(); !got["default/three/backend"] || !got["default/four/backend"] {
		t.Errorf("flexgw top marks after the reload %v, want three and four shared", got)
	}
}
