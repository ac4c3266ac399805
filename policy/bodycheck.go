package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// This file holds what the body-inspecting policies (JSON and XML threat
// protection) share: the request body is read once through a streaming
// checker that stops at the first violation, kept, and sent upstream only
// when the whole document passed, so the upstream never sees a rejected
// byte. Nothing bigger than MaxInspectedBody is held.

// MaxInspectedBody is the largest request body a body-inspecting policy
// buffers; a bigger one is answered 413. Envoy's ext_authz rendering
// buffers the same amount (with_request_body.max_request_bytes).
const MaxInspectedBody = 8 << 20

// errBodyTooLarge is returned when a body exceeds MaxInspectedBody.
var errBodyTooLarge = errors.New("request body too large to inspect")

// limitError is a document that broke one of a policy's limits or is not
// well formed; its text is the reason given to the client.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

func limitErr(format string, args ...any) error { return &limitError{fmt.Sprintf(format, args...)} }

// mediaTypeIs reports whether the request's Content-Type is one of types
// or ends in suffix ("+json"), ignoring parameters and case.
func mediaTypeIs(r *http.Request, suffix string, types ...string) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	for _, t := range types {
		if mt == t {
			return true
		}
	}
	return strings.HasSuffix(mt, suffix)
}

// checkBody runs check over r's body while keeping the bytes it read, then
// puts them back as the request body. It returns the status and reason to
// answer with when the body must be rejected.
func checkBody(r *http.Request, check func(io.Reader) error) (int, string, bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return 0, "", true
	}
	if r.ContentLength > MaxInspectedBody {
		return http.StatusRequestEntityTooLarge, errBodyTooLarge.Error(), false
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	tee := io.TeeReader(&capReader{r: r.Body, left: MaxInspectedBody}, &buf)
	err := check(tee)
	if err == nil {
		// The checker may stop at the end of the document: the rest must
		// be whitespace only, and is kept too.
		_, err = io.Copy(io.Discard, tee)
	}
	_ = r.Body.Close()
	var le *limitError
	switch {
	case err == nil:
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge, errBodyTooLarge.Error(), false
	case errors.As(err, &le):
		return http.StatusBadRequest, le.msg, false
	default:
		return http.StatusBadRequest, "invalid request body: " + err.Error(), false
	}
	r.Body = io.NopCloser(bytes.NewReader(buf.Bytes()))
	r.ContentLength = int64(buf.Len())
	if r.Header.Get("Content-Length") != "" || len(r.TransferEncoding) > 0 {
		r.TransferEncoding = nil
		r.Header.Set("Content-Length", fmt.Sprint(buf.Len()))
	}
	return 0, "", true
}

// capReader fails once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// bodyCheckMiddleware applies check to requests whose content type
// matches; others pass untouched.
func bodyCheckMiddleware(name string, matches func(*http.Request) bool, check func(io.Reader) error) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !matches(r) {
				Decide(r, name, Allowed)
				next.ServeHTTP(w, r)
				return
			}
			if status, msg, ok := checkBody(r, check); !ok {
				deny(w, r, name, Denied, status, msg)
				return
			}
			Decide(r, name, Allowed)
			next.ServeHTTP(w, r)
		})
	}
}
