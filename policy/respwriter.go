package policy

import (
	"net/http"
)

// hookWriter calls before once, just before the response header is
// written, so a policy can act on the upstream's response headers and
// status (CORS, header injection/removal, logging).
type hookWriter struct {
	http.ResponseWriter
	before  func(status int, h http.Header)
	status  int
	written bool
}

func newHookWriter(w http.ResponseWriter, before func(status int, h http.Header)) *hookWriter {
	return &hookWriter{ResponseWriter: w, before: before}
}

func (w *hookWriter) WriteHeader(code int) {
	if !w.written {
		if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
			w.ResponseWriter.WriteHeader(code)
			return
		}
		w.written = true
		w.status = code
		w.before(code, w.ResponseWriter.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *hookWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming responses streaming.
func (w *hookWriter) Flush() {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *hookWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Status is the status written, 0 if none yet.
func (w *hookWriter) Status() int { return w.status }
