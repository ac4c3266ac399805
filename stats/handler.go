package stats

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/stats/topapi"
)

// heartbeat keeps idle log streams alive through proxies and lets the
// server notice a vanished client.
const heartbeat = 15 * time.Second

// Handler serves GET /api/v1/top and GET /api/v1/logs/stream. Mount it on
// the admin server at "/api/v1/top" and "/api/v1/logs/stream" (or "/").
//
// /api/v1/top takes history=<seconds of sparkline> (default 60),
// routes=<api> (repeatable; "*" for all) to include those APIs' routes and
// services, api=<api> to include that API's routes with their histories,
// and apis=0 to leave the API list out (header, upstreams and pipeline
// only). A snapshot is computed at most once a second per query and
// carries an ETag; a request with a matching If-None-Match gets 304 Not
// Modified.
// /api/v1/logs/stream takes status=<minimum code>, api=<api>, q=<text>,
// backlog=<records> (default 100), rate=<records per second> (default
// all), or batch=<interval> with limit=<records per batch> (default 100)
// to receive the newest records in batches.
func (s *Stats) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/top", s.serveTop)
	mux.HandleFunc("GET /api/v1/logs/stream", s.serveLogs)
	if s.opts.Token == "" {
		return mux
	}
	want := "Bearer " + s.opts.Token
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
			http.Error(w, "admin API: missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Stats) serveTop(w http.ResponseWriter, r *http.Request) {
	q := TopQuery{History: 60, API: r.URL.Query().Get("api"), Routes: r.URL.Query()["routes"]}
	switch v := r.URL.Query().Get("apis"); v {
	case "", "1":
	case "0":
		q.OmitAPIs = true
	default:
		http.Error(w, fmt.Sprintf("query parameter apis=%q: want 0 (leave the API list out) or 1", v), http.StatusBadRequest)
		return
	}
	if v := r.URL.Query().Get("history"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("query parameter history=%q: want a number of seconds >= 0", v), http.StatusBadRequest)
			return
		}
		// More than is kept is what is kept: one cache entry for both.
		q.History = min(n, historySeconds)
	}
	tb, err := s.topBody(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("ETag", tb.etag)
	// Stored, but revalidated every time: the tag changes each second.
	h.Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, tb.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(tb.body)))
	_, _ = w.Write(tb.body)
}

// ParseLogFilter reads a LogFilter from query parameters: status (minimum
// response code), api and q (free text).
func ParseLogFilter(v map[string][]string) (LogFilter, error) {
	get := func(k string) string {
		if vs := v[k]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	f := LogFilter{API: get("api"), Text: get("q")}
	if st := get("status"); st != "" {
		n, err := strconv.Atoi(strings.TrimSuffix(st, "+"))
		if err != nil || n < 0 || n > 999 {
			return f, fmt.Errorf("query parameter status=%q: want a minimum response code such as 500", st)
		}
		f.MinStatus = n
	}
	return f, nil
}

// logQuery is a log-stream request's parameters beyond the filter.
type logQuery struct {
	backlog int
	// rate caps records per second (0 = all).
	rate float64
	// batch, when set, sends records every batch interval instead of as
	// they come, at most limit of them: the newest.
	batch time.Duration
	limit int
}

// Batched log streams: bounds of the batch interval and the default and
// largest number of records per batch.
const (
	minBatch     = 50 * time.Millisecond
	maxBatch     = 10 * time.Second
	defaultLimit = 100
	maxLimit     = 10000
)

func parseLogQuery(v map[string][]string) (logQuery, error) {
	get := func(k string) string {
		if vs := v[k]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	q := logQuery{backlog: 100}
	count := func(name, want string, dst *int) error {
		s := get(name)
		if s == "" {
			return nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("query parameter %s=%q: want %s", name, s, want)
		}
		*dst = n
		return nil
	}
	var rate int
	if err := count("backlog", "a record count >= 0", &q.backlog); err != nil {
		return q, err
	}
	// rate caps records per second for this subscriber (0 = all): a
	// dashboard cannot show 10,000 lines a second, and skipping them here
	// saves encoding them for it.
	if err := count("rate", "records per second >= 0", &rate); err != nil {
		return q, err
	}
	q.rate = float64(rate)
	if b := get("batch"); b != "" {
		d, err := time.ParseDuration(b)
		if err != nil || d < minBatch || d > maxBatch {
			return q, fmt.Errorf("query parameter batch=%q: want an interval from %s to %s, such as 250ms", b, minBatch, maxBatch)
		}
		q.batch, q.limit = d, defaultLimit
	}
	if err := count("limit", fmt.Sprintf("records per batch from 1 to %d (with batch)", maxLimit), &q.limit); err != nil {
		return q, err
	}
	if q.batch > 0 && (q.limit < 1 || q.limit > maxLimit) {
		return q, fmt.Errorf("query parameter limit=%q: want records per batch from 1 to %d", get("limit"), maxLimit)
	}
	return q, nil
}

// sseWriter writes server-sent events into one reused buffer.
type sseWriter struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	buf  []byte
	data []byte
}

func (e *sseWriter) send(event string, data []byte) error {
	e.buf = append(e.buf[:0], "event: "...)
	e.buf = append(e.buf, event...)
	e.buf = append(e.buf, "\ndata: "...)
	e.buf = append(e.buf, data...)
	e.buf = append(e.buf, "\n\n"...)
	_, err := e.w.Write(e.buf)
	return err
}

func (e *sseWriter) record(rec *accesslog.Record) error {
	e.data = rec.AppendJSON(e.data[:0])
	return e.send(topapi.EventRecord, e.data)
}

// counter sends {"<field>":n}.
func (e *sseWriter) counter(event, field string, n uint64) error {
	e.data = append(e.data[:0], `{"`...)
	e.data = append(e.data, field...)
	e.data = append(e.data, `":`...)
	e.data = strconv.AppendUint(e.data, n, 10)
	e.data = append(e.data, '}')
	return e.send(event, e.data)
}

func (s *Stats) serveLogs(w http.ResponseWriter, r *http.Request) {
	f, err := ParseLogFilter(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q, err := parseLogQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The filter applies before any batching or rate cap, so a rare 5xx
	// asked for is never skipped in favour of the 2xx around it.
	sub, back := s.logs.subscribe(f, q.backlog)
	if sub == nil {
		http.Error(w, fmt.Sprintf("log stream: %d subscribers already attached (stats.Options.MaxSubscribers)", s.opts.MaxSubscribers), http.StatusServiceUnavailable)
		return
	}
	defer s.logs.unsubscribe(sub)
	rc := http.NewResponseController(w)
	// A stream outlives any server WriteTimeout; the heartbeat notices a
	// vanished client instead.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	e := &sseWriter{w: w, rc: rc, buf: make([]byte, 0, 1024)}
	for i := range back {
		if e.record(&back[i]) != nil {
			return
		}
	}
	if q.batch > 0 {
		// The backlog is a batch of its own: the client shows it at once.
		if e.batchEvent(len(back), 0) != nil {
			return
		}
	}
	if err := rc.Flush(); err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			s.log.Error("log stream needs a flushable ResponseWriter; mount stats.Handler without wrapping middleware (or one that implements Unwrap)", "error", err)
		}
		return
	}
	if q.batch > 0 {
		s.streamBatches(r, e, sub, q)
		return
	}
	s.streamRecords(r, e, sub, q.rate)
}

// streamRecords sends each record as it comes, at most rate a second.
func (s *Stats) streamRecords(r *http.Request, e *sseWriter, sub *subscriber, rate float64) {
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	// A token bucket holding one second of records enforces rate.
	tokens, last := rate, time.Now()
	var sampled, sampledSent uint64
	sampledTick := time.NewTicker(time.Second)
	defer sampledTick.Stop()
	admit := func() bool {
		if rate == 0 {
			return true
		}
		now := time.Now()
		tokens = min(tokens+now.Sub(last).Seconds()*rate, rate)
		last = now
		if tokens < 1 {
			sampled++
			return false
		}
		tokens--
		return true
	}
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if _, err := e.w.Write([]byte(": ping\n\n")); err != nil || e.rc.Flush() != nil {
				return
			}
		case <-sampledTick.C:
			if sampled == sampledSent {
				continue
			}
			sampledSent = sampled
			if e.counter(topapi.EventSampled, "sampled", sampled) != nil || e.rc.Flush() != nil {
				return
			}
		case rec := <-sub.ch:
			if admit() && e.record(&rec) != nil {
				return
			}
			// Drain what is already queued before flushing: one flush per
			// burst instead of one per record.
			for drained := false; !drained; {
				select {
				case rec := <-sub.ch:
					if admit() && e.record(&rec) != nil {
						return
					}
				default:
					drained = true
				}
			}
			if d := sub.dropped.Load(); d != reported {
				reported = d
				if e.counter(topapi.EventDropped, "dropped", d) != nil {
					return
				}
			}
			if e.rc.Flush() != nil {
				return
			}
		}
	}
}

// streamBatches sends, every q.batch, the newest q.limit records that
// arrived since the last batch and a batch event counting the records
// skipped so far. A dashboard showing fifty lines then costs four writes
// a second and at most a screenful per write, however busy the gateway.
func (s *Stats) streamBatches(r *http.Request, e *sseWriter, sub *subscriber, q logQuery) {
	hb := time.NewTicker(heartbeat)
	defer hb.Stop()
	tick := time.NewTicker(q.batch)
	defer tick.Stop()
	// ring keeps the newest records of the batch: n of them from start.
	ring := make([]accesslog.Record, q.limit)
	start, n := 0, 0
	var skipped, skippedSent, reported uint64
	keep := func(rec *accesslog.Record) {
		if n < len(ring) {
			ring[(start+n)%len(ring)] = *rec
			n++
			return
		}
		ring[start] = *rec
		start = (start + 1) % len(ring)
		skipped++
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-hb.C:
			if _, err := e.w.Write([]byte(": ping\n\n")); err != nil || e.rc.Flush() != nil {
				return
			}
		case rec := <-sub.ch:
			keep(&rec)
		case <-tick.C:
			// Take what is queued too, so the batch is as fresh as it can be.
			for drained := false; !drained; {
				select {
				case rec := <-sub.ch:
					keep(&rec)
				default:
					drained = true
				}
			}
			d := sub.dropped.Load()
			if n == 0 && skipped == skippedSent && d == reported {
				continue
			}
			for i := range n {
				if e.record(&ring[(start+i)%len(ring)]) != nil {
					return
				}
			}
			if d != reported {
				reported = d
				if e.counter(topapi.EventDropped, "dropped", d) != nil {
					return
				}
			}
			if e.batchEvent(n, skipped) != nil || e.rc.Flush() != nil {
				return
			}
			clear(ring)
			start, n, skippedSent = 0, 0, skipped
		}
	}
}

// batchEvent ends a batch: {"records":N,"skipped":K}.
func (e *sseWriter) batchEvent(records int, skipped uint64) error {
	e.data = append(e.data[:0], `{"records":`...)
	e.data = strconv.AppendInt(e.data, int64(records), 10)
	e.data = append(e.data, `,"skipped":`...)
	e.data = strconv.AppendUint(e.data, skipped, 10)
	e.data = append(e.data, '}')
	return e.send(topapi.EventBatch, e.data)
}
