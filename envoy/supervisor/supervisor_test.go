package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexgw/flexgw/envoy"
	"github.com/flexgw/flexgw/internal/testutil"
)

// fakeEnvoy is the stand-in binary built once for the package's tests.
var fakeEnvoy string

func TestMain(m *testing.M) { testutil.FakeEnvoyMain(m, &fakeEnvoy) }

// logRecorder is a slog.Handler that keeps every record for assertions.
type logRecorder struct {
	mu    *sync.Mutex
	recs  *[]logRec
	attrs []slog.Attr
}

type logRec struct {
	level     slog.Level
	msg       string
	component string
}

func newRecorder() *logRecorder { return &logRecorder{mu: &sync.Mutex{}, recs: &[]logRec{}} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRec{level: r.Level, msg: r.Message}
	for _, a := range h.attrs {
		if a.Key == "component" {
			rec.component = a.Value.String()
		}
	}
	h.mu.Lock()
	*h.recs = append(*h.recs, rec)
	h.mu.Unlock()
	return nil
}
func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{mu: h.mu, recs: h.recs, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}
func (h *logRecorder) WithGroup(string) slog.Handler { return h }

func (h *logRecorder) find(component, substr string) (logRec, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range *h.recs {
		if r.component == component && strings.Contains(r.msg, substr) {
			return r, true
		}
	}
	return logRec{}, false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func events(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), " ", "_"))
}

// newSupervisor starts the stand-in under a supervisor with a real
// bootstrap from envoy.Bootstrap.
func newSupervisor(t *testing.T, rec *logRecorder, tweak func(*Options)) (*Supervisor, string) {
	t.Helper()
	admin := testutil.FreeAddr(t)
	bs, err := envoy.Bootstrap(envoy.BootstrapOptions{NodeID: "test", AdminAddress: admin})
	if err != nil {
		t.Fatal(err)
	}
	eventsPath := filepath.Join(t.TempDir(), "events")
	t.Setenv("FAKE_ENVOY_EVENTS", eventsPath)
	opts := Options{
		EnvoyPath: fakeEnvoy, Bootstrap: bs, WorkDir: t.TempDir(), AdminAddr: admin,
		Logger:     slog.New(rec),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		DrainTimeout: 10 * time.Second, StopTimeout: 10 * time.Second, PollInterval: 10 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, eventsPath
}

func waitReady(t *testing.T, s *Supervisor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStartReadyLogsAndDrainOnClose(t *testing.T) {
	rec := newRecorder()
	s, eventsPath := newSupervisor(t, rec, nil)
	waitReady(t, s)
	st := s.Status()
	if !st.Running || !st.Ready || st.PID == 0 || st.Restarts != 0 {
		t.Fatalf("status = %+v", st)
	}
	waitFor(t, "envoy's log lines in slog", func() bool {
		r, ok := rec.find("envoy", "this is a stand-in")
		return ok && r.level == slog.LevelWarn
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(events(t, eventsPath), " ")
	want := fmt.Sprintf("start_%d drain sigterm", st.PID)
	if got != want {
		t.Errorf("events = %q, want %q (drain before SIGTERM)", got, want)
	}
	if _, ok := rec.find("envoy-supervisor", "envoy drained"); !ok {
		t.Error("no 'envoy drained' log: Close did not wait for connections to finish")
	}
	if st := s.Status(); st.Running {
		t.Errorf("after Close: %+v", st)
	}
}

func TestCrashRestartsWithBackoff(t *testing.T) {
	rec := newRecorder()
	s, eventsPath := newSupervisor(t, rec, nil)
	waitReady(t, s)
	admin := s.opts.AdminAddr
	crash := func() {
		resp, err := http.Post("http://"+admin+"/crash", "", nil)
		if err == nil {
			resp.Body.Close()
		}
	}
	first := s.Status().PID
	crash()
	waitFor(t, "a restart", func() bool { st := s.Status(); return st.Restarts == 1 && st.PID != first })
	waitReady(t, s)
	if st := s.Status(); st.NextBackoff != 40*time.Millisecond || !strings.Contains(st.LastExit, "exit status 1") {
		t.Errorf("after one crash: %+v (want next backoff doubled to 40ms)", st)
	}
	second := s.Status().PID
	crash()
	waitFor(t, "a second restart", func() bool { st := s.Status(); return st.Restarts == 2 && st.PID != second })
	waitReady(t, s)
	if st := s.Status(); st.NextBackoff != 80*time.Millisecond {
		t.Errorf("after two crashes: next backoff %v, want 80ms", st.NextBackoff)
	}
	if _, ok := rec.find("envoy-supervisor", "envoy exited; restarting"); !ok {
		t.Error("crash not logged")
	}
	if _, ok := rec.find("envoy", "crashing on request"); !ok {
		t.Error("the dying envoy's last line was not forwarded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ev := events(t, eventsPath)
	if n := strings.Count(strings.Join(ev, " "), "start_"); n != 3 {
		t.Errorf("events %v: %d starts, want 3", ev, n)
	}
}

func TestStopKillsEnvoyThatIgnoresSIGTERM(t *testing.T) {
	t.Setenv("FAKE_ENVOY_IGNORE_TERM", "1")
	rec := newRecorder()
	s, _ := newSupervisor(t, rec, func(o *Options) { o.StopTimeout = 100 * time.Millisecond })
	waitReady(t, s)
	pid := s.Status().PID
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.find("envoy-supervisor", "killing it"); !ok {
		t.Error("no kill logged")
	}
	if err := syscallKill0(pid); err == nil {
		t.Errorf("process %d still exists", pid)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{AdminAddr: "x:1", Bootstrap: []byte("a")},
		{EnvoyPath: "envoy", Bootstrap: []byte("a")},
		{EnvoyPath: "envoy", AdminAddr: "x:1"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestLineLevel(t *testing.T) {
	cases := map[string]slog.Level{
		"[2024-05-01 10:00:00.000][42][warning][config] x": slog.LevelWarn,
		"[2024-05-01 10:00:00.000][42][error][main] x":     slog.LevelError,
		"[2024-05-01 10:00:00.000][42][debug][main] x":     slog.LevelDebug,
		"[2024-05-01 10:00:00.000][42][info][main] x":      slog.LevelInfo,
		"plain text": slog.LevelInfo,
	}
	for line, want := range cases {
		if got := lineLevel(line); got != want {
			t.Errorf("lineLevel(%q) = %v, want %v", line, got, want)
		}
	}
}
