package dataplane

import (
	"net/http"

	"github.com/flexgw/flexgw/ir"
)

// respHeaderWriter makes a route's response header changes on the
// response head before it is written, upstream answer or local reply, as
// Envoy's route-level response_headers_to_add/remove do.
type respHeaderWriter struct {
	http.ResponseWriter
	m    *ir.HeaderMutation
	done bool
}

func (w *respHeaderWriter) WriteHeader(code int) {
	if !w.done && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.done = true
		w.m.Apply(w.ResponseWriter.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respHeaderWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (w *respHeaderWriter) Flush() {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	flushTo(w.ResponseWriter)
}

// Unwrap lets http.ResponseController reach the server's writer (Hijack).
func (w *respHeaderWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// routeHeaders applies rt's request header changes to r and returns the
// writer making its response changes (w itself when it has none).
func routeHeaders(rt *route, w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	if rt.headers == nil {
		return w
	}
	if rt.headers.Request != nil {
		if r.Header == nil {
			r.Header = http.Header{}
		}
		rt.headers.Request.Apply(r.Header)
	}
	if rt.headers.Response != nil {
		return &respHeaderWriter{ResponseWriter: w, m: rt.headers.Response}
	}
	return w
}
