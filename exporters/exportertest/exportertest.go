// Package exportertest has stand-in aggregators for tests: HTTP receivers
// written to the published protocols of Splunk HEC, the New Relic Log API
// and Sumo Logic HTTP sources. They check what a real endpoint checks
// (path, auth, headers, gzip, body shape, size limits), answer with the
// vendor's status codes and bodies, record every event they accept, and
// can be told to misbehave (errors, dropped connections, slow answers).
package exportertest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Fault is what a receiver does with one request instead of accepting it.
type Fault struct {
	// Status, when non-zero, is answered without accepting the events.
	Status int
	// RetryAfter is sent with Status.
	RetryAfter string
	// Drop closes the connection without an answer, before accepting.
	Drop bool
	// DropAfterAccept accepts the events, then closes the connection
	// without an answer: the sender must retry, producing duplicates.
	DropAfterAccept bool
	// Delay is waited before answering (a slow aggregator).
	Delay time.Duration
}

// Receiver is the protocol-independent part of every stand-in.
type Receiver struct {
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	fault    func(n int) Fault
	requests int
	counts   map[string]int
	events   []json.RawMessage
	bodies   [][]byte
	problems []string
	keep     bool
	changed  chan struct{}
}

func newReceiver(h func(r *Receiver, w http.ResponseWriter, req *http.Request)) *Receiver {
	r := &Receiver{counts: map[string]int{}, changed: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { h(r, w, req) }))
	r.URL = r.srv.URL
	return r
}

// Close stops the server.
func (r *Receiver) Close() { r.srv.Close() }

// SetFault installs a per-request fault plan (n counts requests from 1).
func (r *Receiver) SetFault(f func(n int) Fault) {
	r.mu.Lock()
	r.fault = f
	r.mu.Unlock()
}

// KeepBodies makes the receiver keep every decompressed body it accepts.
func (r *Receiver) KeepBodies() {
	r.mu.Lock()
	r.keep = true
	r.mu.Unlock()
}

// Bodies returns the kept bodies.
func (r *Receiver) Bodies() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

// Events returns every accepted event (the record object), duplicates
// included.
func (r *Receiver) Events() []json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]json.RawMessage(nil), r.events...)
}

// Counts returns how often each record id (its request_id or id field)
// was accepted.
func (r *Receiver) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// Unique returns how many distinct record ids arrived.
func (r *Receiver) Unique() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.counts)
}

// Problems returns protocol violations the receiver saw.
func (r *Receiver) Problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

// Requests returns how many requests arrived.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// WaitUnique polls until at least n distinct ids arrived or the deadline
// passes, and reports whether they did.
func (r *Receiver) WaitUnique(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if r.Unique() >= n {
			return true
		}
		select {
		case <-r.changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return r.Unique() >= n
}

func (r *Receiver) problem(format string, args ...any) {
	r.mu.Lock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// begin counts the request and returns the fault to apply.
func (r *Receiver) begin() Fault {
	r.mu.Lock()
	r.requests++
	n, f := r.requests, r.fault
	r.mu.Unlock()
	if f == nil {
		return Fault{}
	}
	return f(n)
}

// injectFault counts the request and applies the configured fault: a
// delay, a dropped connection, or an error status (with Retry-After) that
// reply writes in the vendor's format. It reports whether the response
// has been dealt with; the fault is returned for DropAfterAccept.
func (r *Receiver) injectFault(w http.ResponseWriter, reply func(status int)) (f Fault, done bool) {
	f = r.begin()
	if f.Delay > 0 {
		time.Sleep(f.Delay)
	}
	if f.Drop {
		hijackClose(w)
		return f, true
	}
	if f.Status == 0 {
		return f, false
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	reply(f.Status)
	return f, true
}

// plainError replies with the status text, as New Relic and Sumo Logic do.
func plainError(w http.ResponseWriter) func(int) {
	return func(status int) { http.Error(w, http.StatusText(status), status) }
}

// accept records events (raw record objects).
func (r *Receiver) accept(body []byte, events []json.RawMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keep {
		r.bodies = append(r.bodies, append([]byte(nil), body...))
	}
	for _, e := range events {
		r.events = append(r.events, e)
		key := idOf(e)
		r.counts[key]++
	}
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// hijackClose drops the connection without a response.
func hijackClose(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// readBody reads the request body, gunzipping when Content-Encoding says
// so; it enforces limit on the wire (compressed) size when compressedLimit
// is set and on the decompressed size otherwise.
func readBody(req *http.Request, limit int64, compressedLimit bool) ([]byte, int, string) {
	raw, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
	if err != nil {
		return nil, http.StatusBadRequest, "read body: " + err.Error()
	}
	if compressedLimit && int64(len(raw)) > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload of %d compressed bytes over %d", len(raw), limit)
	}
	body := raw
	if strings.EqualFold(req.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, http.StatusBadRequest, "Content-Encoding gzip but body is not gzip: " + err.Error()
		}
		body, err = io.ReadAll(zr)
		if err != nil {
			return nil, http.StatusBadRequest, "gzip: " + err.Error()
		}
	}
	if !compressedLimit && int64(len(body)) > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload of %d bytes over %d", len(body), limit)
	}
	return body, 0, ""
}

// idOf finds a record's request_id, id or message without a full decode
// (receivers see hundreds of thousands of records in the no-loss tests).
func idOf(e []byte) string {
	for _, k := range []string{`"request_id":"`, `"id":"`, `"message":"`} {
		if i := bytes.Index(e, []byte(k)); i >= 0 {
			rest := e[i+len(k):]
			if j := bytes.IndexByte(rest, '"'); j >= 0 {
				return string(rest[:j])
			}
		}
	}
	return string(e)
}
