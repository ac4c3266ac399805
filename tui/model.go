package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/flexgw/flexgw/stats/topapi"
)

// viewID names a tab.
type viewID int

const (
	viewAPIs viewID = iota
	viewUpstreams
	viewLogs
	viewPipeline
	numViews
)

var viewNames = [numViews]string{"APIs", "Upstreams", "Logs", "Pipeline"}

// headerLines is the fixed height above a view's body; mouse handling
// relies on it.
const headerLines = 4

// Messages.
type (
	// topMsg is the result of one /api/v1/top fetch; omitAPIs says the
	// query left the API list out.
	topMsg struct {
		top      *topapi.Top
		err      error
		omitAPIs bool
	}
	// tickMsg asks for the next refresh.
	tickMsg struct{}
)

// fetchFunc loads a snapshot; injected so Update is testable without I/O.
// With q.revalidate it may return nil, nil: the snapshot on screen is
// still the agent's current one.
type fetchFunc func(ctx context.Context, q topQuery) (*topapi.Top, error)

// model is the `flexgw top` program state. Views keep their own state in
// apisView, upstreamsView, logsView and pipelineView (one file each); the
// root only routes messages and composes the frame.
type model struct {
	ctx      context.Context
	fetch    fetchFunc
	refresh  time.Duration
	adminURL string
	now      func() time.Time
	st       styles
	ascii    bool
	// static renders whole tables without a selection (Frame).
	static bool
	// cached is the last frame, reused until a message changes state;
	// frames counts the frames built (tests check that an unchanged
	// snapshot builds none).
	cached string
	frames int

	width, height int
	view          viewID
	help          bool

	top      *topapi.Top
	lastOK   time.Time
	err      error
	fetching bool
	refetch  bool
	// ticking says a refresh tick is scheduled: fetches started by keys
	// must not start a second timer chain (each would poll at the refresh
	// rate on its own).
	ticking  bool
	stream   streamMsg
	streamOn bool
	// follow switches the log stream on and off (nil in tests that feed
	// records directly); following mirrors the last switch.
	follow    func(on bool, query string)
	following bool
	followedQ string

	// apisStale is set when a snapshot arrived while the APIs view was not
	// shown: its rows are rebuilt when it is shown again, so the other
	// views do not pay for sorting every API and route each refresh.
	apisStale bool

	apis apisView
	ups  upstreamsView
	logs logsView
	pipe pipelineView
}

func newModel(ctx context.Context, fetch fetchFunc, adminURL string, refresh time.Duration, plain bool) *model {
	return &model{
		ctx:      ctx,
		fetch:    fetch,
		refresh:  refresh,
		adminURL: adminURL,
		now:      time.Now,
		st:       newStyles(plain),
		ascii:    plain,
		width:    120,
		height:   32,
		apis:     newAPIsView(),
		logs:     logsView{following: true},
	}
}

// Init starts the first fetch.
func (m *model) Init() tea.Cmd { return m.fetchCmd() }

// sparkWidth is how many seconds of history the current view draws: the
// sparkline column's width, or the drill-down's wider graph. Asking for no
// more than that keeps each refresh's snapshot small.
func (m *model) sparkWidth() int {
	if m.apis.drill != "" {
		return min(max(m.width-20, 10), 120)
	}
	_, spark := apiColumns(m.width, m.apis.nameWant)
	return spark
}

func (m *model) fetchCmd() tea.Cmd {
	if m.fetching {
		m.refetch = true
		return nil
	}
	m.fetching = true
	// Revalidate only what is on screen: a 304 then means "keep it".
	q := topQuery{history: m.sparkWidth(), api: m.apis.drill, revalidate: m.top != nil}
	if m.view == viewAPIs {
		// Only the APIs view draws routes; the others skip decoding them.
		q.routes = m.apis.visibleExpanded(m.bodyHeight())
	} else {
		// The other views need no API rows at all: a snapshot of the
		// header, upstreams and pipeline is a fraction of the size.
		q.history, q.omitAPIs = 0, true
	}
	ctx, fetch := m.ctx, m.fetch
	return func() tea.Msg {
		t, err := fetch(ctx, q)
		return topMsg{top: t, err: err, omitAPIs: q.omitAPIs}
	}
}

// Update routes a message to the root handlers or the active view. The
// frame cache is dropped only by messages that change what is shown: a
// refresh the agent answered with 304 (most of them at a sub-second
// refresh) costs no rebuild and no repaint.
func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tickMsg:
		// A tick only starts a fetch; the frame is unchanged, and the
		// runtime asks for View after every message.
		m.ticking = false
		return m, m.fetchCmd()
	case tea.WindowSizeMsg:
		m.cached = ""
		m.width, m.height = msg.Width, msg.Height
		return m, nil
	case topMsg:
		return m, m.receiveTop(msg)
	case logsMsg:
		m.cached = ""
		m.logs.receive(msg)
		return m, nil
	case streamMsg:
		if m.follow != nil && !m.following {
			return m, nil // a message from a stream being shut down
		}
		m.cached = ""
		m.streamOn = msg.connected
		if msg.err != nil || msg.dropped > 0 || !msg.connected {
			m.stream = msg
		}
		return m, nil
	case tea.KeyPressMsg:
		m.cached = ""
		shown := m.view
		cmd := m.key(msg)
		return m, m.afterInput(shown, cmd)
	case tea.MouseWheelMsg:
		m.cached = ""
		d := 3
		if msg.Button == tea.MouseWheelUp {
			d = -3
		}
		m.move(d)
		return m, nil
	case tea.MouseClickMsg:
		m.cached = ""
		shown := m.view
		cmd := m.click(msg.X, msg.Y)
		return m, m.afterInput(shown, cmd)
	}
	return m, nil
}

// afterInput brings the views up to date after a key or click that was
// handled while shown was on screen.
func (m *model) afterInput(shown viewID, cmd tea.Cmd) tea.Cmd {
	m.syncAPIs()
	m.syncFollow()
	if m.view == viewAPIs && shown != viewAPIs && m.top != nil {
		// The other views fetch no API rows: the table shows what it had
		// until this fetch brings it up to date.
		return tea.Batch(cmd, m.fetchCmd())
	}
	return cmd
}

// receiveTop applies a fetch result and schedules the next refresh.
func (m *model) receiveTop(msg topMsg) tea.Cmd {
	m.fetching = false
	delay := m.refresh
	switch {
	case msg.err != nil:
		m.cached = ""
		m.err = msg.err
		// Back off while the gateway is away, never slower than 2 s.
		delay = max(min(2*time.Second, 4*m.refresh), m.refresh)
	case msg.top == nil:
		// 304: the agent still has the snapshot on screen.
		m.lastOK = m.now()
		if m.err != nil {
			m.err, m.cached = nil, ""
		}
	default:
		if msg.omitAPIs && m.top != nil {
			// Keep the last API list for when the APIs view returns.
			msg.top.APIs = m.top.APIs
		}
		m.cached = ""
		m.err = nil
		m.top = msg.top
		m.lastOK = m.now()
		m.apisStale = true
		m.syncAPIs()
	}
	if m.refetch {
		m.refetch = false
		return m.fetchCmd()
	}
	if m.ticking {
		return nil
	}
	m.ticking = true
	return tea.Tick(delay, func(time.Time) tea.Msg { return tickMsg{} })
}

// key handles global keys first unless a view is editing text.
func (m *model) key(k tea.KeyPressMsg) tea.Cmd {
	s := k.String()
	if s == "ctrl+c" {
		return tea.Quit
	}
	if m.editing() {
		return m.viewKey(k)
	}
	if m.help {
		if s == "?" || s == "esc" || s == "q" {
			m.help = false
		}
		return nil
	}
	if cmd, ok := globalKeys.dispatch(m, s); ok {
		return cmd
	}
	return m.viewKey(k)
}

// syncAPIs rebuilds the APIs view's rows from the latest snapshot if it
// is on screen and they are out of date.
func (m *model) syncAPIs() {
	if m.apisStale && m.view == viewAPIs {
		m.apisStale = false
		m.apis.rebuild(m.top)
	}
}

// syncFollow streams logs only while the Logs view is on screen, with
// its committed filters applied by the server.
func (m *model) syncFollow() {
	want := m.view == viewLogs && !m.help
	q := m.logs.serverQuery()
	if m.follow == nil || (want == m.following && (!want || q == m.followedQ)) {
		return
	}
	m.following, m.followedQ = want, q
	m.follow(want, q)
	m.stream, m.streamOn = streamMsg{}, false
}

func (m *model) editing() bool {
	return (m.view == viewAPIs && m.apis.editing) || (m.view == viewLogs && m.logs.editing)
}

func (m *model) viewKey(k tea.KeyPressMsg) tea.Cmd {
	switch m.view {
	case viewAPIs:
		return m.apis.key(m, k)
	case viewUpstreams:
		m.ups.key(m, k)
	case viewLogs:
		m.logs.key(m, k)
	case viewPipeline:
	}
	return nil
}

func (m *model) move(d int) {
	switch m.view {
	case viewAPIs:
		m.apis.move(d)
	case viewUpstreams:
		m.ups.move(m, d)
	case viewLogs:
		m.logs.move(d)
	}
}

// click switches tabs from the tab bar, sorts from a table header and
// selects rows in the body.
func (m *model) click(x, y int) tea.Cmd {
	if y == headerLines-1 {
		pos := 0
		for i := range numViews {
			w := len(tabLabel(i))
			if x >= pos && x < pos+w {
				m.view = i
				m.help = false
				return nil
			}
			pos += w + 1
		}
		return nil
	}
	if y < headerLines || m.help {
		return nil
	}
	switch m.view {
	case viewAPIs:
		m.apis.click(m, x, y-headerLines)
	case viewUpstreams:
		m.ups.click(y - headerLines)
	case viewLogs:
		m.logs.click(y - headerLines)
	}
	return nil
}

func (m *model) bodyHeight() int { return max(m.height-headerLines-1, 1) }

// View composes header, body and footer into exactly height lines.
func (m *model) View() tea.View {
	if m.cached == "" {
		m.cached = m.frame()
		m.frames++
	}
	v := tea.NewView(m.cached)
	v.AltScreen = !m.ascii
	v.MouseMode = tea.MouseModeCellMotion
	v.WindowTitle = "flexgw top"
	return v
}

func (m *model) frame() string {
	m.syncAPIs()
	lines := make([]string, 0, m.height)
	lines = append(lines, m.header()...)
	h := m.bodyHeight()
	var body []string
	if m.help {
		body = m.helpLines()
	} else {
		switch m.view {
		case viewAPIs:
			body = m.apis.render(m, m.width, h)
		case viewUpstreams:
			body = m.ups.render(m, m.width, h)
		case viewLogs:
			body = m.logs.render(m, m.width, h)
		case viewPipeline:
			body = m.pipe.render(m, m.width, h)
		}
	}
	for i := range h {
		if i < len(body) {
			lines = append(lines, clip(body[i], m.width))
		} else {
			lines = append(lines, "")
		}
	}
	lines = append(lines, clip(m.footer(), m.width))
	return strings.Join(lines, "\n")
}

func tabLabel(i viewID) string { return fmt.Sprintf(" %d %s ", i+1, viewNames[i]) }

func (m *model) footer() string {
	if m.help {
		return m.st.dim.Render("? or esc closes help")
	}
	var hints string
	switch m.view {
	case viewAPIs:
		hints = m.apis.footer(m)
	case viewUpstreams:
		hints = "↑↓ select  tab/1-4 views  ? help  q quit"
	case viewLogs:
		hints = m.logs.footer(m)
	case viewPipeline:
		hints = "tab/1-4 views  ? help  q quit"
	}
	return m.st.dim.Render(hints)
}

// editLine applies one key to a filter being typed: enter keeps it, esc
// clears it, backspace deletes a character, text is appended. It reports
// whether editing goes on.
func editLine(text *string, k tea.KeyPressMsg) bool {
	switch k.String() {
	case "enter":
		return false
	case "esc":
		*text = ""
		return false
	case "backspace":
		if r := []rune(*text); len(r) > 0 {
			*text = string(r[:len(r)-1])
		}
	default:
		*text += k.Text
	}
	return true
}
