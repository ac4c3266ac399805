package tui

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/flexgw/flexgw/internal/testutil"
)

const adminLabel = "http://127.0.0.1:9180"

// fixtureServer serves testdata/top.json as the admin API would.
func fixtureServer(t *testing.T) *httptest.Server {
	t.Helper()
	body, err := os.ReadFile("testdata/top.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/top" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fixtureLogs(t *testing.T) []logRecord {
	t.Helper()
	f, err := os.Open("testdata/logs.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []logRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r logRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

var fixedNow = time.Date(2026, 1, 2, 3, 2, 5, 0, time.UTC)

// fixtureModel is a model at 120x32 that has fetched the fixture over a
// real socket and received the fixture log records.
func fixtureModel(t *testing.T) *model {
	t.Helper()
	c, err := newClient(fixtureServer(t).URL, "")
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(context.Background(), c.top, adminLabel, time.Second, false)
	m.now = func() time.Time { return fixedNow }
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 32})
	run(t, m, m.Init())
	if m.top == nil {
		t.Fatalf("fixture not loaded: %v", m.err)
	}
	m.Update(streamMsg{connected: true})
	m.Update(logsMsg{recs: fixtureLogs(t), reset: true, gen: 1})
	return m
}

// run executes cmd like the bubbletea runtime would, feeding its message
// back, except that ticks are not waited for.
func run(t *testing.T, m *model, cmd tea.Cmd) tea.Msg {
	t.Helper()
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if _, ok := msg.(topMsg); ok {
		m.Update(msg)
	}
	return msg
}

func press(m *model, keys ...string) tea.Cmd {
	var last tea.Cmd
	for _, k := range keys {
		last = m.updateCmd(keyMsg(k))
	}
	return last
}

// Update returns (tea.Model, tea.Cmd); this shim keeps tests short.
func (m *model) updateCmd(msg tea.Msg) tea.Cmd { _, c := m.Update(msg); return c }

func keyMsg(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(k)[0]
	return tea.KeyPressMsg{Code: r, Text: k}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", "golden", name+".txt"), []byte(got))
}

// plainFrame is the frame with colours and attributes removed: the plain
// colour profile the goldens are kept in.
func plainFrame(m *model) string { return ansi.Strip(m.View().Content) }

func TestGoldenFrames(t *testing.T) {
	cases := []struct {
		name  string
		setup func(m *model)
	}{
		{"apis", func(m *model) {}},
		{"apis_sort_p99", func(m *model) { press(m, "s", "s", "s", "s", "s", "s") }},
		{"apis_expanded", func(m *model) { press(m, "space") }},
		{"apis_filter", func(m *model) { press(m, "/", "u", "s", "e") }},
		{"api_drill", func(m *model) { press(m, "enter") }},
		{"upstreams", func(m *model) { press(m, "2") }},
		{"logs", func(m *model) { press(m, "3") }},
		{"logs_errors_selected", func(m *model) { press(m, "3", "e", "up", "up") }},
		{"logs_detail", func(m *model) { press(m, "3", "up", "enter") }},
		{"pipeline", func(m *model) { press(m, "4") }},
		{"help", func(m *model) { press(m, "?") }},
		{"narrow", func(m *model) { m.Update(tea.WindowSizeMsg{Width: 80, Height: 20}) }},
		{"disconnected", func(m *model) {
			m.now = func() time.Time { return fixedNow.Add(12 * time.Second) }
			m.Update(topMsg{err: errConnRefused})
		}},
		{"reload_failed", func(m *model) {
			t := *m.top
			t.Header.Reload.OK = false
			t.Header.Reload.Error = "conf.d/orders.yaml:14: spec.policies[0].config.maximumRequests: must be > 0"
			m.Update(topMsg{top: &t})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := fixtureModel(t)
			c.setup(m)
			golden(t, c.name, plainFrame(m))
			if lines := strings.Count(m.View().Content, "\n") + 1; lines != m.height {
				t.Errorf("frame has %d lines, want exactly the terminal height %d", lines, m.height)
			}
		})
	}
}

// errConnRefused is what net/http returns when nothing listens.
var errConnRefused = &url.Error{Op: "Get", URL: adminLabel + "/api/v1/top", Err: &net.OpError{
	Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9180}, Err: syscall.ECONNREFUSED}}

func TestOnceFrameGolden(t *testing.T) {
	srv := fixtureServer(t)
	var out strings.Builder
	if err := Run(context.Background(), Options{AdminURL: srv.URL, Once: true, Out: &out, Width: 120}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Error("--once output contains escape sequences")
	}
	golden(t, "once", out.String())
}
