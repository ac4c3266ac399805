package exportertest

import (
	"encoding/json"
	"net/http"
)

// NewRelic is a stand-in New Relic Log API: POST /log/v1 with Api-Key or
// X-License-Key, Content-Type application/json, a gzip (or plain) body of
// at most 1,000,000 bytes as sent, in the detailed format
// [{"common":{"attributes":{}},"logs":[{"timestamp":ms,"message":"","attributes":{}}]}],
// answered 202 Accepted with a requestId.
type NewRelic struct {
	*Receiver
	Key string
	// MaxPayload bounds the body as sent (compressed).
	MaxPayload int64
}

// NewNewRelic starts a Log API stand-in accepting key in either header.
func NewNewRelic(key string) *NewRelic {
	n := &NewRelic{Key: key, MaxPayload: 1_000_000}
	n.Receiver = newReceiver(n.serve)
	return n
}

func (n *NewRelic) serve(r *Receiver, w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/log/v1" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if req.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if req.Header.Get("Api-Key") != n.Key && req.Header.Get("X-License-Key") != n.Key {
		http.Error(w, `{"error":"Forbidden"}`, http.StatusForbidden)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		r.problem("newrelic: Content-Type %q", ct)
		http.Error(w, "unsupported media type", http.StatusUnsupportedMediaType)
		return
	}
	f, done := r.injectFault(w, plainError(w))
	if done {
		return
	}
	body, status, msg := readBody(req, n.MaxPayload, true)
	if status != 0 {
		r.problem("newrelic: %s", msg)
		http.Error(w, msg, status)
		return
	}
	var payload []struct {
		Common *struct {
			Attributes map[string]any `json:"attributes"`
		} `json:"common"`
		Logs []struct {
			Timestamp  *int64          `json:"timestamp"`
			Message    *string         `json:"message"`
			Attributes json.RawMessage `json:"attributes"`
		} `json:"logs"`
	}
	if err := json.Unmarshal(body, &payload); err != nil {
		r.problem("newrelic: body: %v", err)
		http.Error(w, "invalid JSON", http.StatusBadRequest)
		return
	}
	var events []json.RawMessage
	for _, p := range payload {
		for _, l := range p.Logs {
			if l.Timestamp == nil || l.Message == nil {
				r.problem("newrelic: log without timestamp or message")
				http.Error(w, "invalid log", http.StatusBadRequest)
				return
			}
			if *l.Timestamp < 1e12 { // milliseconds since 2001
				r.problem("newrelic: timestamp %d is not in milliseconds", *l.Timestamp)
			}
			events = append(events, l.Attributes)
		}
	}
	r.accept(body, events)
	if f.DropAfterAccept {
		hijackClose(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"requestId":"00000000-0000-4000-8000-000000000000"}`))
}
