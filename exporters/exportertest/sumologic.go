package exportertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
)

// Sumo is a stand-in Sumo Logic HTTP Logs source: POST
// /receiver/v1/http/<token>, newline-delimited messages (JSON here), gzip,
// X-Sumo-* metadata headers, at most 1 MB uncompressed; 200 on success,
// 429 when throttled.
type Sumo struct {
	*Receiver
	Token   string
	MaxBody int64

	hmu     sync.Mutex
	headers http.Header
}

// NewSumo starts an HTTP-source stand-in for token.
func NewSumo(token string) *Sumo {
	s := &Sumo{Token: token, MaxBody: 1_000_000}
	s.Receiver = newReceiver(s.serve)
	return s
}

// SourceURL is the URL a user copies from the Sumo Logic UI.
func (s *Sumo) SourceURL() string { return s.URL + "/receiver/v1/http/" + s.Token }

// LastHeaders returns the headers of the last accepted request.
func (s *Sumo) LastHeaders() http.Header {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	return s.headers.Clone()
}

func (s *Sumo) serve(r *Receiver, w http.ResponseWriter, req *http.Request) {
	tok, ok := strings.CutPrefix(req.URL.Path, "/receiver/v1/http/")
	if !ok || tok != s.Token {
		// Sumo answers an unknown source token with 401.
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	if req.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f, done := r.injectFault(w, plainError(w))
	if done {
		return
	}
	body, status, msg := readBody(req, s.MaxBody, false)
	if status != 0 {
		r.problem("sumo: %s", msg)
		http.Error(w, msg, status)
		return
	}
	var events []json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if !json.Valid(line) {
			r.problem("sumo: line is not JSON: %.80s", line)
		}
		events = append(events, json.RawMessage(append([]byte(nil), line...)))
	}
	s.hmu.Lock()
	s.headers = req.Header.Clone()
	s.hmu.Unlock()
	r.accept(body, events)
	if f.DropAfterAccept {
		hijackClose(w)
		return
	}
	w.WriteHeader(http.StatusOK)
}
