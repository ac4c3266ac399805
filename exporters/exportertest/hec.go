package exportertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
)

// HEC is a stand-in Splunk HTTP Event Collector: POST
// /services/collector/event with "Authorization: Splunk <token>",
// concatenated event envelopes, and optional indexer acknowledgement
// (ackId per request on a X-Splunk-Request-Channel; POST
// /services/collector/ack answers {"acks":{"id":bool}}).
type HEC struct {
	*Receiver
	Token string
	// MaxContentLength is HEC's max_content_length.
	MaxContentLength int64
	// Ack turns on indexer acknowledgement (a channel becomes required).
	Ack bool
	// AckAfterPolls is how many polls an ackId stays false.
	AckAfterPolls int

	amu    sync.Mutex
	nextID int64
	polls  map[int64]int
}

// NewHEC starts a HEC stand-in accepting token.
func NewHEC(token string) *HEC {
	h := &HEC{Token: token, MaxContentLength: 1 << 20, polls: map[int64]int{}}
	h.Receiver = newReceiver(h.serve)
	return h
}

func hecReply(w http.ResponseWriter, status, code int, text string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"text":%q,"code":%d}`, text, code)
}

func (h *HEC) serve(r *Receiver, w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		hecReply(w, http.StatusMethodNotAllowed, 6, "Invalid data format")
		return
	}
	switch auth := req.Header.Get("Authorization"); {
	case auth == "":
		hecReply(w, http.StatusUnauthorized, 2, "Token is required")
		return
	case auth != "Splunk "+h.Token:
		hecReply(w, http.StatusForbidden, 4, "Invalid token")
		return
	}
	channel := req.Header.Get("X-Splunk-Request-Channel")
	if channel == "" {
		channel = req.URL.Query().Get("channel")
	}
	if h.Ack && channel == "" {
		hecReply(w, http.StatusBadRequest, 10, "Data channel is missing")
		return
	}
	switch req.URL.Path {
	case "/services/collector/ack":
		h.serveAck(w, req)
		return
	case "/services/collector/event", "/services/collector", "/services/collector/event/1.0":
	default:
		hecReply(w, http.StatusNotFound, 404, "Not Found")
		return
	}
	busy := func(status int) {
		code, text := 9, "Server is busy"
		if status < 500 {
			code, text = 6, "Invalid data format"
		}
		hecReply(w, status, code, text)
	}
	f, done := r.injectFault(w, busy)
	if done {
		return
	}
	body, status, msg := readBody(req, h.MaxContentLength, false)
	if status != 0 {
		r.problem("hec: %s", msg)
		hecReply(w, status, 6, msg)
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		hecReply(w, http.StatusBadRequest, 5, "No data")
		return
	}
	var events []json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	for n := 0; dec.More(); n++ {
		var env struct {
			Time       json.Number     `json:"time"`
			Host       string          `json:"host"`
			Source     string          `json:"source"`
			Sourcetype string          `json:"sourcetype"`
			Index      string          `json:"index"`
			Event      json.RawMessage `json:"event"`
			Fields     map[string]any  `json:"fields"`
		}
		if err := dec.Decode(&env); err != nil {
			r.problem("hec: event %d: %v", n, err)
			hecReply(w, http.StatusBadRequest, 6, "Invalid data format")
			return
		}
		if len(env.Event) == 0 || string(env.Event) == "null" {
			hecReply(w, http.StatusBadRequest, 12, "Event field is required")
			return
		}
		if string(env.Event) == `""` {
			hecReply(w, http.StatusBadRequest, 13, "Event field cannot be blank")
			return
		}
		if env.Time != "" {
			if _, err := strconv.ParseFloat(string(env.Time), 64); err != nil {
				r.problem("hec: event %d: time %q is not epoch seconds", n, env.Time)
			}
		}
		events = append(events, env.Event)
	}
	if f.DropAfterAccept {
		r.accept(body, events)
		hijackClose(w)
		return
	}
	r.accept(body, events)
	if h.Ack {
		h.amu.Lock()
		id := h.nextID
		h.nextID++
		h.polls[id] = 0
		h.amu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"text":"Success","code":0,"ackId":%d}`, id)
		return
	}
	hecReply(w, http.StatusOK, 0, "Success")
}

func (h *HEC) serveAck(w http.ResponseWriter, req *http.Request) {
	if !h.Ack {
		hecReply(w, http.StatusBadRequest, 14, "ACK is disabled")
		return
	}
	var q struct {
		Acks []int64 `json:"acks"`
	}
	if err := json.NewDecoder(req.Body).Decode(&q); err != nil {
		hecReply(w, http.StatusBadRequest, 6, "Invalid data format")
		return
	}
	out := map[string]bool{}
	h.amu.Lock()
	for _, id := range q.Acks {
		n, ok := h.polls[id]
		if ok {
			h.polls[id] = n + 1
		}
		out[strconv.FormatInt(id, 10)] = ok && n >= h.AckAfterPolls
	}
	h.amu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"acks": out})
}
