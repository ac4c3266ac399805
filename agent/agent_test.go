package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flexgw/flexgw/envoy/plane"
	"github.com/flexgw/flexgw/internal/testutil"
)

// testutil.SyncBuffer is a bytes.Buffer safe for the agent's goroutines to log into
// while the test reads it.
// testAgent is one agent running in this process on the built-in data plane.
type testAgent struct {
	a      *Agent
	admin  string
	logs   *testutil.SyncBuffer
	cancel context.CancelFunc
	done   chan error
}

func apiYAML(port int, upstreamURL string) string {
	return fmt.Sprintf(`apiVersion: gateway.mulesoft.com/v1alpha1
kind: ApiInstance
metadata:
  name: orders
spec:
  address: http://127.0.0.1:%d/
  services:
    backend:
      address: %s
      routes:
        - rules:
            - path: (/.*)
`, port, upstreamURL)
}

// writeConfig writes then renames, so the watcher never reads half a file.
func writeConfig(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func testOptions(t *testing.T, dir string, logs io.Writer) Options {
	return Options{
		ConfigDir:     dir,
		AdminAddr:     "127.0.0.1:0",
		AccessLog:     filepath.Join(t.TempDir(), "access.log"),
		StateDir:      t.TempDir(),
		DataPlane:     "builtin",
		EBPF:          "off",
		GatewayID:     "unit",
		DrainTimeout:  10 * time.Second,
		WatchInterval: 20 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(logs, nil)),
	}
}

// startAgent runs an agent until it serves; the test's cleanup stops it.
func startAgent(t *testing.T, o Options, logs *testutil.SyncBuffer) *testAgent {
	t.Helper()
	ready := make(chan string, 1)
	o.OnReady = func(addr string) { ready <- addr }
	a, err := newAgent(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{a: a, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-ta.done
	})
	select {
	case ta.admin = <-ready:
	case err := <-ta.done:
		t.Fatalf("agent stopped before serving: %v\n%s", err, logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("agent did not serve within 60s\n%s", logs)
	}
	return ta
}

func (ta *testAgent) status(t *testing.T) Status {
	t.Helper()
	var st Status
	code, body := get(t, "http://"+ta.admin+"/api/v1/status")
	if code != http.StatusOK {
		t.Fatalf("/api/v1/status: %d %s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/api/v1/status: %v\n%s", err, body)
	}
	return st
}

// waitReload polls /api/v1/status until the last reload has result and
// reason, and returns that status.
func (ta *testAgent) waitReload(t *testing.T, result, reason string) Status {
	t.Helper()
	var st Status
	eventually(t, 20*time.Second, func() string {
		if st = ta.status(t); st.LastReload.Result != result || st.LastReload.Reason != reason {
			return fmt.Sprintf("last reload %+v, want %s (%s)", st.LastReload, result, reason)
		}
		return ""
	})
	return st
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// eventually polls cond until it returns "" or the deadline passes, then
// fails with cond's last reason.
func eventually(t *testing.T, within time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		reason := cond()
		if reason == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// upstream is a loopback HTTP server answering with its name.
func upstream(t *testing.T, name string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestReloadAppliesValidKeepsLastGoodAndSkipsUnchanged(t *testing.T) {
	upA, upB := upstream(t, "a"), upstream(t, "b")
	port := testutil.FreePort(t)
	dir := t.TempDir()
	writeConfig(t, dir, "api.yaml", apiYAML(port, upA.URL))
	var logs testutil.SyncBuffer
	ta := startAgent(t, testOptions(t, dir, &logs), &logs)
	gw := fmt.Sprintf("http://127.0.0.1:%d/x", port)

	if code, body := get(t, gw); code != 200 || body != "a /x" {
		t.Fatalf("first snapshot: %d %q, want 200 \"a /x\"", code, body)
	}
	if code, body := get(t, "http://"+ta.admin+"/ready"); code != 200 || !strings.Contains(body, `"ready"`) {
		t.Errorf("/ready once serving: %d %s", code, body)
	}
	st := ta.status(t)
	if st.SnapshotVersion != 1 || st.LastReload.Result != "success" || st.LastReload.Reason != "startup" || st.DataPlane != "builtin" {
		t.Errorf("status after start: %+v", st)
	}

	// A valid change is applied: the new upstream serves, as snapshot 2.
	writeConfig(t, dir, "api.yaml", apiYAML(port, upB.URL))
	eventually(t, 20*time.Second, func() string {
		if _, body := get(t, gw); body != "b /x" {
			return "still served: " + body
		}
		return ""
	})
	// The data plane serves the new snapshot before the agent's appliers
	// (logs, telemetry) finish and the status records the reload.
	st = ta.waitReload(t, "success", "file change")
	if st.SnapshotVersion != 2 {
		t.Errorf("status after a valid change: %+v", st.LastReload)
	}
	eventually(t, 20*time.Second, func() string {
		if !strings.Contains(logs.String(), `msg="config reloaded" component=agent reason="file change" snapshot=2`) {
			return "reload not logged:\n" + logs.String()
		}
		return ""
	})

	// An invalid change is rejected: /api/v1/status names file:line, the
	// last good snapshot keeps serving and the gateway stays ready.
	writeConfig(t, dir, "api.yaml", apiYAML(port, upB.URL)+"          - path: \"/bad(\"\n")
	st = ta.waitReload(t, "failure", "file change")
	fileLine := regexp.MustCompile(`api\.yaml:\d+`)
	if !fileLine.MatchString(st.LastReload.Error) || len(st.LastReload.Errors) == 0 || !fileLine.MatchString(st.LastReload.Errors[0]) {
		t.Errorf("rejection does not name file:line: %+v", st.LastReload)
	}
	if st.SnapshotVersion != 2 {
		t.Errorf("snapshot %d serves after a rejected change, want 2", st.SnapshotVersion)
	}
	if _, body := get(t, gw); body != "b /x" {
		t.Errorf("after a rejected change the gateway serves %q, want the last good config", body)
	}
	if code, _ := get(t, "http://"+ta.admin+"/ready"); code != 200 {
		t.Errorf("/ready = %d after a rejected change, want 200", code)
	}
	if !strings.Contains(logs.String(), "config rejected, last good snapshot keeps serving") {
		t.Errorf("rejection not logged:\n%s", logs.String())
	}

	// Back to the good config plus a comment: the files changed, the
	// compiled snapshot did not. After a rejection that is a recovery,
	// logged and shown as one (it used to say "unchanged", silently).
	writeConfig(t, dir, "api.yaml", apiYAML(port, upB.URL)+"# reviewed\n")
	st = ta.waitReload(t, "recovered", "file change")
	if st.SnapshotVersion != 2 || st.LastReload.Error != "" {
		t.Errorf("status after recovering: version %d, %+v", st.SnapshotVersion, st.LastReload)
	}
	if !strings.Contains(logs.String(), `msg="config recovered" component=agent reason="file change" snapshot=2`) {
		t.Errorf("recovery not logged with the snapshot:\n%s", logs.String())
	}

	// Once more with a comment: nothing failed before, so "unchanged".
	writeConfig(t, dir, "api.yaml", apiYAML(port, upB.URL)+"# reviewed twice\n")
	st = ta.waitReload(t, "unchanged", "file change")
	if st.SnapshotVersion != 2 || st.LastReload.Error != "" {
		t.Errorf("status after an unchanged reload: version %d, %+v", st.SnapshotVersion, st.LastReload)
	}

	// SIGHUP asks for a reload too; nothing changed since.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	ta.waitReload(t, "unchanged", "SIGHUP")
}

func TestRequestReloadCoalesces(t *testing.T) {
	a, err := newAgent(Options{ConfigDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// The reload loop is busy (not running here): every request after the
	// first is covered by the one already pending.
	a.requestReload("SIGHUP")
	a.requestReload("file change")
	a.requestReload("SIGHUP")
	if n := len(a.reloadCh); n != 1 {
		t.Fatalf("%d reloads pending, want 1", n)
	}
	if reason := <-a.reloadCh; reason != "SIGHUP" {
		t.Errorf("pending reload reason %q, want the first request's", reason)
	}
	a.requestReload("file change")
	if reason := <-a.reloadCh; reason != "file change" {
		t.Errorf("after the pending one was taken, a new request queues: got %q", reason)
	}
}

func TestShutdownDrainsInFlightThenCloses(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(entered) })
		<-release
		fmt.Fprint(w, "finished")
	}))
	t.Cleanup(slow.Close)
	port := testutil.FreePort(t)
	dir := t.TempDir()
	writeConfig(t, dir, "api.yaml", apiYAML(port, slow.URL))
	var logs testutil.SyncBuffer
	o := testOptions(t, dir, &logs)
	ta := startAgent(t, o, &logs)

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/slow", port))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{code: resp.StatusCode, body: string(b), err: err}
	}()
	<-entered
	// A `flexgw top` log stream stays open until the agent stops; it must
	// not hold up closing the admin API.
	stream, err := http.Get("http://" + ta.admin + "/api/v1/logs/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("log stream: %d", stream.StatusCode)
	}
	ta.cancel()
	// While the request is in flight the admin API still answers, and
	// /ready says draining.
	eventually(t, 20*time.Second, func() string {
		code, body := get(t, "http://"+ta.admin+"/ready")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
			return fmt.Sprintf("/ready = %d %s", code, body)
		}
		return ""
	})
	close(release)
	if r := <-done; r.err != nil || r.code != 200 || r.body != "finished" {
		t.Errorf("in-flight request during drain: %+v", r)
	}
	if err := <-ta.done; err != nil {
		t.Errorf("run returned %v after cancel, want nil", err)
	}
	ta.done <- nil // for the cleanup

	out := logs.String()
	di, si := strings.Index(out, "msg=draining"), strings.Index(out, "msg=stopped")
	if di < 0 || si < di {
		t.Errorf("want \"draining\" then \"stopped\" in the log:\n%s", out)
	}
	if strings.Contains(out, "msg=close") || strings.Contains(out, "drain incomplete") {
		t.Errorf("a part failed to stop cleanly:\n%s", out)
	}
	if _, err := io.ReadAll(stream.Body); err != nil {
		t.Errorf("log stream did not end cleanly at shutdown: %v", err)
	}
	// Every part closed: the admin port and the data plane's are free.
	for _, addr := range []string{ta.admin, fmt.Sprintf("127.0.0.1:%d", port)} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still bound after shutdown: %v", addr, err)
			continue
		}
		ln.Close()
	}
	// The access-log record of the drained request was written and flushed.
	b, err := os.ReadFile(o.AccessLog)
	if err != nil || !strings.Contains(string(b), `"/slow"`) {
		t.Errorf("access log after shutdown (%v):\n%s", err, b)
	}
}

func TestStartFailureNamesThePartAndStops(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := testutil.FreePort(t)
	dir := t.TempDir()
	writeConfig(t, dir, "api.yaml", apiYAML(port, "http://127.0.0.1:9"))
	var logs testutil.SyncBuffer
	o := testOptions(t, dir, &logs)
	o.AdminAddr = busy.Addr().String()
	o.OnReady = func(string) { t.Error("OnReady called although start-up failed") }
	a, err := newAgent(o)
	if err != nil {
		t.Fatal(err)
	}
	err = a.run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start admin API: listen on "+o.AdminAddr) {
		t.Fatalf("run error %v, want it to name the admin API and its address", err)
	}
	// The parts started before the admin API closed without a failure.
	if strings.Contains(logs.String(), "msg=close") {
		t.Errorf("a part failed to close:\n%s", logs.String())
	}
}

func TestFirstSnapshotRejectedByTheDataPlane(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	writeConfig(t, dir, "api.yaml", apiYAML(port, "http://127.0.0.1:9"))
	var logs testutil.SyncBuffer
	o := testOptions(t, dir, &logs)
	o.OnReady = func(string) { t.Error("OnReady called although the listener could not bind") }
	a, err := newAgent(o)
	if err != nil {
		t.Fatal(err)
	}
	err = a.run(context.Background())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Fatalf("run error %v, want it to name the listener address", err)
	}
	// The admin API had started; it was closed with the rest.
	if a.adminAddr == "" {
		t.Fatal("admin API never started")
	}
	ln, err := net.Listen("tcp", a.adminAddr)
	if err != nil {
		t.Errorf("admin address %s still bound after the failed start: %v", a.adminAddr, err)
	} else {
		ln.Close()
	}
}

func TestBadDataPlaneFlagStartsNothing(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, "api.yaml", apiYAML(testutil.FreePort(t), "http://127.0.0.1:9"))
	var logs testutil.SyncBuffer
	o := testOptions(t, dir, &logs)
	o.DataPlane = "nginx"
	a, err := newAgent(o)
	if err != nil {
		t.Fatal(err)
	}
	err = a.run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `--dataplane "nginx"`) {
		t.Fatalf("run error %v, want it to name --dataplane", err)
	}
	if a.pipeline != nil || a.adminAddr != "" {
		t.Errorf("parts started for a bad flag: pipeline %v, admin %q", a.pipeline != nil, a.adminAddr)
	}
}

// With the xDS data plane the Envoy check of a reload is the plane's own
// translation (kept for the push): a change Envoy would refuse is still
// rejected with the reason, the last good snapshot keeps being served over
// ADS, and the next valid change is pushed.
func TestXDSReloadRejectsWhatEnvoyWould(t *testing.T) {
	dir := t.TempDir()
	port := testutil.FreePort(t)
	writeConfig(t, dir, "api.yaml", apiYAML(port, "http://127.0.0.1:9001"))
	var logs testutil.SyncBuffer
	o := testOptions(t, dir, &logs)
	o.DataPlane, o.XDSAddress = "xds", "127.0.0.1:0"
	ta := startAgent(t, o, &logs)
	if st := ta.status(t); st.SnapshotVersion != 1 || st.DataPlane != "xds" {
		t.Fatalf("status after start: %+v", st)
	}
	// Ten capture groups: the built-in proxy takes them, Envoy's rewrite does not.
	writeConfig(t, dir, "api.yaml", strings.Replace(apiYAML(port, "http://127.0.0.1:9001"), "path: (/.*)", "path: /(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)", 1))
	st := ta.waitReload(t, "failure", "file change")
	if !strings.Contains(st.LastReload.Error, "envoy: ") || !strings.Contains(st.LastReload.Error, "at most 9") || st.SnapshotVersion != 1 {
		t.Fatalf("Envoy-only error: %+v (snapshot %d)", st.LastReload, st.SnapshotVersion)
	}
	writeConfig(t, dir, "api.yaml", apiYAML(port, "http://127.0.0.1:9002"))
	st = ta.waitReload(t, "recovered", "file change")
	if st.SnapshotVersion != 2 {
		t.Fatalf("after a valid change: snapshot %d, %+v", st.SnapshotVersion, st.LastReload)
	}
	p, ok := ta.a.plane.(*plane.Plane)
	if !ok {
		t.Fatalf("data plane %T, want *plane.Plane", ta.a.plane)
	}
	if res := p.XDS().Result(); res == nil || len(res.Envoy.Endpoints) != 1 ||
		res.Envoy.Endpoints[0].GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue() != 9002 {
		t.Fatalf("pushed translation %+v, want the endpoint on port 9002", res)
	}
	if st := p.XDS().Status(); st.SnapshotVersion != 2 {
		t.Fatalf("xds status %+v, want snapshot 2 pushed", st)
	}
}

// A component's status may read the agent's state while a reload waits to
// write it: Status used to call the components under its read lock, and
// their own read lock then waited behind the reload, which waited behind
// Status (the agent package's test run that hung to the 10-minute timeout).
func TestStatusWhileAReloadWaitsDoesNotDeadlock(t *testing.T) {
	a, err := newAgent(testOptions(t, t.TempDir(), io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	a.statusExtra["reader"] = func() any {
		written := make(chan struct{})
		go func() { // a reload storing its snapshot
			a.state.mu.Lock()
			a.state.mu.Unlock()
			close(written)
		}()
		// Until the writer holds or waits for the lock (TryRLock fails),
		// or is done.
		for a.state.mu.TryRLock() {
			a.state.mu.RUnlock()
			select {
			case <-written:
				return a.state.snapshot()
			default:
				runtime.Gosched()
			}
		}
		return a.state.snapshot()
	}
	done := make(chan Status, 1)
	go func() { done <- a.Status() }()
	select {
	case st := <-done:
		if _, ok := st.Components["reader"]; !ok {
			t.Fatalf("status %+v lacks the component", st)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Status deadlocked with a waiting writer")
	}
}
