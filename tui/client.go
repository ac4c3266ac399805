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

func (c *client) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
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
}

// allRoutes is stats.AllRoutes (the TUI does not link the aggregator).
const allRoutes = "*"

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
	resp, err := c.get(ctx, "/api/v1/top?"+v.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// One buffer per client, reused: a snapshot with a thousand routes is
	// tens of kilobytes every refresh. Fetches do not overlap (the model
	// has at most one in flight), the lock only guards against misuse.
	c.bufMu.Lock()
	defer c.bufMu.Unlock()
	c.buf.Reset()
	if _, err := c.buf.ReadFrom(resp.Body); err != nil {
		return nil, fmt.Errorf("GET /api/v1/top: read: %w", err)
	}
	var t topapi.Top
	if err := json.Unmarshal(c.buf.Bytes(), &t); err != nil {
		return nil, fmt.Errorf("GET /api/v1/top: decode: %w", err)
	}
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
	sampled   uint64
}

// logRate is the most records per second the TUI asks for: more than a
// screen can show, few enough that decoding them stays cheap.
const logRate = 200

// logsMsg is a batch of records received since the last batch. The first
// batch of each connection has reset set: it starts with the server's
// backlog, which replaces what the view held. gen numbers connections so a
// late batch of an old one is ignored.
type logsMsg struct {
	recs  []logRecord
	reset bool
	gen   uint64
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
// busy the gateway is. The switch never blocks.
func (c *client) followLogs(ctx context.Context, flush time.Duration, send func(any)) func(on bool, query string) {
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
					go c.streamLogs(sctx, gen, req.query, flush, send)
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
// with backoff, and hands records to send in batches every flush interval
// so a busy gateway costs one UI update per interval, not one per record.
func (c *client) streamLogs(ctx context.Context, gen uint64, query string, flush time.Duration, send func(any)) {
	var mu sync.Mutex
	var batch []logRecord
	reset := false
	const maxBatch = 2000
	go func() {
		t := time.NewTicker(flush)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				mu.Lock()
				b, r := batch, reset
				batch, reset = nil, false
				mu.Unlock()
				if len(b) > 0 || r {
					send(logsMsg{recs: b, reset: r, gen: gen})
				}
			}
		}
	}()
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		err := c.readStream(ctx, query, func(ev, data string) {
			switch ev {
			case topapi.EventRecord:
				var r logRecord
				if json.Unmarshal([]byte(data), &r) != nil {
					return
				}
				mu.Lock()
				if len(batch) >= maxBatch {
					batch = batch[1:]
				}
				batch = append(batch, r)
				mu.Unlock()
			case topapi.EventDropped:
				var d topapi.Dropped
				if json.Unmarshal([]byte(data), &d) == nil {
					send(streamMsg{connected: true, dropped: d.Dropped})
				}
			case topapi.EventSampled:
				var d topapi.Sampled
				if json.Unmarshal([]byte(data), &d) == nil {
					send(streamMsg{connected: true, sampled: d.Sampled})
				}
			}
		}, func() {
			// A new connection replays the backlog: start over.
			backoff = 250 * time.Millisecond
			mu.Lock()
			batch, reset = nil, true
			mu.Unlock()
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
func (c *client) readStream(ctx context.Context, query string, on func(event, data string), opened func()) error {
	v, err := url.ParseQuery(query)
	if err != nil {
		return fmt.Errorf("log stream query %q: %w", query, err)
	}
	v.Set("backlog", "200")
	v.Set("rate", strconv.Itoa(logRate))
	resp, err := c.get(ctx, "/api/v1/logs/stream?"+v.Encode())
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
