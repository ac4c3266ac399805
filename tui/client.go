package tui

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flexgw/flexgw/stats/topapi"
)

// client talks to the agent's admin API.
type client struct {
	base  string
	token string
	http  *http.Client

	bufMu sync.Mutex
	buf   bytes.Buffer
	// etag is the agent's tag for the last snapshot decoded (guarded by
	// bufMu): a revalidating fetch sends it and gets 304 while the agent's
	// second has not moved on.
	etag string
}

func newClient(adminURL, token string) (*client, error) {
	if adminURL == "" {
		adminURL = DefaultAdminURL
	}
	if !strings.Contains(adminURL, "://") {
		adminURL = "http://" + adminURL
	}
	u, err := url.Parse(adminURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--admin %q: want a URL such as http://127.0.0.1:9901", adminURL)
	}
	return &client{
		base:  strings.TrimRight(u.String(), "/"),
		token: token,
		// No overall timeout: the log stream is long-lived; top requests
		// carry their own deadline.
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, ResponseHeaderTimeout: 10 * time.Second}},
	}, nil
}

// get sends a GET with the token and returns a 200 response (or a 304
// when ifNoneMatch is set and the agent's snapshot still carries it).
func (c *client) get(ctx context.Context, path, ifNoneMatch string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if ifNoneMatch != "" {
		req.Header.Set("If-None-Match", ifNoneMatch)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotModified && ifNoneMatch != "" {
		return resp, nil
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

// topQuery is what a view asks the agent for: routes only of the APIs
// on screen, so refreshing with a thousand routes stays cheap.
type topQuery struct {
	history int
	api     string
	routes  []string
	// revalidate asks the agent to answer 304 when the snapshot is the
	// one last returned; top then returns nil, nil.
	revalidate bool
	// omitAPIs leaves the API list out: the other views show the header,
	// upstreams and pipeline only.
	omitAPIs bool
}

// allRoutes is stats.AllRoutes (the TUI does not link the aggregator).
const allRoutes = "*"

// top fetches a snapshot. With q.revalidate it returns nil, nil when the
// agent's snapshot is the one this client decoded last (304 Not
// Modified): the caller keeps what it has and skips decoding, rebuilding
// and repainting.
func (c *client) top(ctx context.Context, q topQuery) (*topapi.Top, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v := url.Values{}
	v.Set("history", strconv.Itoa(q.history))
	if q.api != "" {
		v.Set("api", q.api)
	}
	for _, r := range q.routes {
		v.Add("routes", r)
	}
	if q.omitAPIs {
		v.Set("apis", "0")
	}
	// Fetches do not overlap (the model has at most one in flight); the
	// lock guards the buffer and tag against misuse.
	c.bufMu.Lock()
	defer c.bufMu.Unlock()
	inm := ""
	if q.revalidate {
		inm = c.etag
	}
	resp, err := c.get(ctx, "/api/v1/top?"+v.Encode(), inm)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil, nil
	}
	// One buffer per client, reused: a snapshot with a thousand routes is
	// tens of kilobytes.
	c.buf.Reset()
	if _, err := c.buf.ReadFrom(resp.Body); err != nil {
		return nil, fmt.Errorf("GET /api/v1/top: read: %w", err)
	}
	var t topapi.Top
	if err := json.Unmarshal(c.buf.Bytes(), &t); err != nil {
		c.etag = ""
		return nil, fmt.Errorf("GET /api/v1/top: decode: %w", err)
	}
	c.etag = resp.Header.Get("ETag")
	return &t, nil
}

// logRecord is an access-log record as the stream carries it: the wire
// form of accesslog.Record (durations are integer milliseconds).
type logRecord struct {
	StartTime     time.Time `json:"start_time"`
	Method        string    `json:"method"`
	Path          string    `json:"path"`
	Protocol      string    `json:"protocol"`
	ResponseCode  int       `json:"response_code"`
	ResponseFlags string    `json:"response_flags"`
	BytesReceived int64     `json:"bytes_received"`
	BytesSent     int64     `json:"bytes_sent"`
	DurationMs    int64     `json:"duration"`
	UpstreamMs    *int64    `json:"upstream_service_time"`
	UserAgent     string    `json:"user_agent"`
	RequestID     string    `json:"request_id"`
	Authority     string    `json:"authority"`
	UpstreamHost  string    `json:"upstream_host"`
	Cluster       string    `json:"upstream_cluster"`
	Remote        string    `json:"downstream_remote_address"`
	API           string    `json:"api_instance"`
	Route         string    `json:"route"`
	GatewayID     string    `json:"gateway_id"`
	TraceID       string    `json:"trace_id"`
	Policy        string    `json:"policy"`
	PolicyOutcome string    `json:"policy_outcome"`
}

// streamMsg reports the log stream's connection state.
type streamMsg struct {
	connected bool
	err       error
	dropped   uint64
}

// logBatchLimit is the most records the TUI asks for per batch: the
// newest ones, a screenful. At four batches a second that is more lines
// than anyone reads, and a busy gateway costs the dashboard four small
// reads a second instead of thousands of records.
const logBatchLimit = 50

// logsMsg is one batch from the stream. The first batch of each
// connection has reset set: it is the server's backlog, which replaces
// what the view held. gen numbers connections so a late batch of an old
// one is ignored. skipped counts the records the server left out of this
// connection's batches so far (they passed the filters but were not the
// newest logBatchLimit of their batch).
type logsMsg struct {
	recs    []logRecord
	reset   bool
	gen     uint64
	skipped uint64
}

// followReq switches the log stream: on with the server-side filter query
// (status, api, q), or off.
type followReq struct {
	on    bool
	query string
}

// followLogs returns a switch for the log stream: on connects with the
// given filters (the server replays its recent matching records), a new
// query reconnects, off disconnects. The TUI follows logs only while the
// Logs view is shown, so the other views cost no per-record work however
// busy the gateway is. batch is the server's batch interval. The switch
// never blocks.
func (c *client) followLogs(ctx context.Context, batch time.Duration, send func(any)) func(on bool, query string) {
	want := make(chan followReq, 1)
	go func() {
		var stop context.CancelFunc
		var gen uint64
		var cur string
		for {
			select {
			case <-ctx.Done():
				if stop != nil {
					stop()
				}
				return
			case req := <-want:
				if stop != nil && (!req.on || req.query != cur) {
					stop()
					stop = nil
				}
				if req.on && stop == nil {
					var sctx context.Context
					sctx, stop = context.WithCancel(ctx)
					gen++
					cur = req.query
					go c.streamLogs(sctx, gen, req.query, batch, send)
				}
			}
		}
	}()
	return func(on bool, query string) {
		r := followReq{on, query}
		for {
			select {
			case want <- r:
				return
			default:
				// Replace a pending, not yet applied request.
				select {
				case <-want:
				default:
				}
			}
		}
	}
}

// streamLogs follows /api/v1/logs/stream until ctx ends, reconnecting
// with backoff. The server sends the newest logBatchLimit matching records
// every batch interval, ended by a batch event; each batch becomes one
// logsMsg, so a busy gateway costs one UI update per interval.
func (c *client) streamLogs(ctx context.Context, gen uint64, query string, batch time.Duration, send func(any)) {
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		var recs []logRecord
		reset := true
		err := c.readStream(ctx, query, batch, func(ev, data string) {
			switch ev {
			case topapi.EventRecord:
				var r logRecord
				if json.Unmarshal([]byte(data), &r) == nil {
					r.clean()
					recs = append(recs, r)
				}
			case topapi.EventBatch:
				var b topapi.Batch
				if json.Unmarshal([]byte(data), &b) != nil {
					return
				}
				// The first batch of a connection is its backlog.
				send(logsMsg{recs: recs, reset: reset, gen: gen, skipped: b.Skipped})
				recs, reset = nil, false
			case topapi.EventDropped:
				var d topapi.Dropped
				if json.Unmarshal([]byte(data), &d) == nil {
					send(streamMsg{connected: true, dropped: d.Dropped})
				}
			}
		}, func() {
			backoff = 250 * time.Millisecond
			send(streamMsg{connected: true})
		})
		if ctx.Err() != nil {
			return
		}
		send(streamMsg{err: err})
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// readStream reads server-sent events until the stream ends.
func (c *client) readStream(ctx context.Context, query string, batch time.Duration, on func(event, data string), opened func()) error {
	v, err := url.ParseQuery(query)
	if err != nil {
		return fmt.Errorf("log stream query %q: %w", query, err)
	}
	v.Set("backlog", "200")
	v.Set("batch", batch.String())
	v.Set("limit", strconv.Itoa(logBatchLimit))
	resp, err := c.get(ctx, "/api/v1/logs/stream?"+v.Encode(), "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	opened()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var ev, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev != "" || data != "" {
				on(ev, data)
			}
			ev, data = "", ""
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			ev = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			data = strings.TrimPrefix(line[len("data:"):], " ")
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("log stream: %w", err)
	}
	return fmt.Errorf("log stream closed by the gateway")
}
