package stats

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flexgw/flexgw/stats/topapi"
)

// cacheFor is how long a computed /api/v1/top response is reused: many
// dashboards refreshing at 100 ms then cost one computation, not one each.
const cacheFor = 100 * time.Millisecond

// heartbeat keeps idle log streams alive through proxies and lets the
// server notice a vanished client.
const heartbeat = 15 * time.Second

// Handler serves GET /api/v1/top and GET /api/v1/logs/stream. Mount it on
// the admin server at "/api/v1/top" and "/api/v1/logs/stream" (or "/").
//
// /api/v1/top takes history=<seconds of sparkline> (default 60),
// routes=<api> (repeatable; "*" for all) to include those APIs' routes, and
// api=<api> to include that API's routes with their histories.
// /api/v1/logs/stream takes status=<minimum code>, api=<api>, q=<text>,
// backlog=<records> (default 100) and rate=<records per second> (default
// all).
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
	if v := r.URL.Query().Get("history"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("query parameter history=%q: want a number of seconds >= 0", v), http.StatusBadRequest)
			return
		}
		q.History = n
	}
	body, err := s.topJSON(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// topJSON returns the encoded snapshot, reusing the last one for the
// default query while it is fresh.
func (s *Stats) topJSON(q TopQuery) ([]byte, error) {
	cacheable := q.History == 60 && q.API == "" && len(q.Routes) == 0
	if cacheable {
		s.cacheMu.Lock()
		defer s.cacheMu.Unlock()
		if s.cacheJSON != nil && s.now().Sub(s.cacheAt) < cacheFor && !s.now().Before(s.cacheAt) {
			return s.cacheJSON, nil
		}
	}
	body, err := json.Marshal(s.Top(q))
	if err != nil {
		return nil, fmt.Errorf("stats: encode /api/v1/top: %w", err)
	}
	if cacheable {
		s.cacheJSON, s.cacheAt = body, s.now()
	}
	return body, nil
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

func (s *Stats) serveLogs(w http.ResponseWriter, r *http.Request) {
	f, err := ParseLogFilter(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	backlog := 100
	if v := r.URL.Query().Get("backlog"); v != "" {
		if backlog, err = strconv.Atoi(v); err != nil || backlog < 0 {
			http.Error(w, fmt.Sprintf("query parameter backlog=%q: want a record count >= 0", v), http.StatusBadRequest)
			return
		}
	}
	// rate caps records per second for this subscriber (0 = all): a
	// dashboard cannot show 10,000 lines a second, and skipping them here
	// saves encoding them for it.
	var rate float64
	if v := r.URL.Query().Get("rate"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("query parameter rate=%q: want records per second >= 0", v), http.StatusBadRequest)
			return
		}
		rate = float64(n)
	}
	sub, back := s.logs.subscribe(f, backlog)
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

	buf := make([]byte, 0, 1024)
	send := func(event string, data []byte) error {
		buf = append(buf[:0], "event: "...)
		buf = append(buf, event...)
		buf = append(buf, "\ndata: "...)
		buf = append(buf, data...)
		buf = append(buf, "\n\n"...)
		_, err := w.Write(buf)
		return err
	}
	var data []byte
	for i := range back {
		data = back[i].AppendJSON(data[:0])
		if send(topapi.EventRecord, data) != nil {
			return
		}
	}
	if err := rc.Flush(); err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			s.log.Error("log stream needs a flushable ResponseWriter; mount stats.Handler without wrapping middleware (or one that implements Unwrap)", "error", err)
		}
		return
	}
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
			if _, err := w.Write([]byte(": ping\n\n")); err != nil || rc.Flush() != nil {
				return
			}
		case <-sampledTick.C:
			if sampled == sampledSent {
				continue
			}
			sampledSent = sampled
			data = append(data[:0], `{"sampled":`...)
			data = strconv.AppendUint(data, sampled, 10)
			data = append(data, '}')
			if send(topapi.EventSampled, data) != nil || rc.Flush() != nil {
				return
			}
		case rec := <-sub.ch:
			if admit() {
				data = rec.AppendJSON(data[:0])
				if send(topapi.EventRecord, data) != nil {
					return
				}
			}
			// Drain what is already queued before flushing: one flush per
			// burst instead of one per record.
			for drained := false; !drained; {
				select {
				case rec := <-sub.ch:
					if !admit() {
						continue
					}
					data = rec.AppendJSON(data[:0])
					if send(topapi.EventRecord, data) != nil {
						return
					}
				default:
					drained = true
				}
			}
			if d := sub.dropped.Load(); d != reported {
				reported = d
				data = append(data[:0], `{"dropped":`...)
				data = strconv.AppendUint(data, d, 10)
				data = append(data, '}')
				if send(topapi.EventDropped, data) != nil {
					return
				}
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}
