// Package exporters holds what every log exporter shares: the Event they
// deliver, the Exporter interface logpipe drives, and the error type that
// tells logpipe whether a failed delivery is worth retrying. One
// subpackage per aggregator (splunk, newrelic, sumologic) implements it to
// that vendor's published protocol.
package exporters

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flexgw/flexgw/accesslog"
)

// Kind says which log stream an event belongs to.
type Kind uint8

// Event kinds.
const (
	Access  Kind = 1
	Runtime Kind = 2
)

// String returns "access" or "runtime".
func (k Kind) String() string {
	if k == Runtime {
		return "runtime"
	}
	return "access"
}

// Event is one log record, already enriched and redacted by logpipe.
// JSON is a complete JSON object; exporters embed it verbatim, so nothing
// is decoded twice on the hot path.
type Event struct {
	Time time.Time
	Kind Kind
	// Message is a one-line human summary ("GET /x 200" or the runtime
	// log message) for aggregators that want a message field.
	Message string
	JSON    []byte
}

// Exporter delivers batches of events to one aggregator.
type Exporter interface {
	// Name is the configured output name (logging.outputs[].name).
	Name() string
	// Export returns nil only once the aggregator has confirmed every event
	// of the batch. Any error may be an *Error that classifies it; an
	// error that is not one is treated as a transport error and retried.
	Export(ctx context.Context, events []Event) error
}

// Outcome is what became of one request of a batch: events[Lo:Hi] of
// the slice given to ExportRequests, and Err, nil once the aggregator
// confirmed them.
type Outcome struct {
	Lo, Hi int
	Err    error
}

// RequestExporter is an Exporter that sends a batch as several requests
// (split by the vendor's size limit) and reports each one's outcome, so
// logpipe resends only the requests that failed: a record a request
// delivered is never sent again because another request of its batch
// failed.
type RequestExporter interface {
	Exporter
	// ExportRequests sends events and calls report once per request it
	// attempted, from the calling goroutine. Events no report covers were
	// not attempted (the exporter stops early when the aggregator is
	// unreachable) and are sent again later.
	ExportRequests(ctx context.Context, events []Event, report func(Outcome))
}

// ExportAll is Export for a RequestExporter: nil once every request was
// confirmed, otherwise the first failure.
func ExportAll(ctx context.Context, x RequestExporter, events []Event) error {
	var first error
	covered := 0
	x.ExportRequests(ctx, events, func(o Outcome) {
		covered += o.Hi - o.Lo
		if o.Err != nil && first == nil {
			first = o.Err
		}
	})
	if first == nil && covered < len(events) {
		first = &Error{Retryable: true, Err: fmt.Errorf("%d of %d events not attempted", len(events)-covered, len(events))}
	}
	return first
}

// Prober is an exporter that can tell cheaply whether its aggregator is
// reachable again, so a sender waiting out a long back-off after
// connection failures retries as soon as it is.
type Prober interface {
	Probe(ctx context.Context) error
}

// DialProbe opens and closes a TCP connection to rawURL's host and port:
// the aggregator (or its load balancer) accepts connections again.
func DialProbe(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return err
	}
	return c.Close()
}

// Continue reports whether a sender should go on with the next request
// of a batch after err: yes when the aggregator answered (a status: the
// next request may well be taken), no when it could not be reached.
func Continue(err error) bool {
	if err == nil {
		return true
	}
	var e *Error
	return errors.As(err, &e) && e.Status != 0 && e.RetryAfter == 0 && e.Status != http.StatusTooManyRequests
}

// Error is a delivery failure with the aggregator's verdict.
type Error struct {
	// Status is the HTTP status, 0 for transport errors.
	Status int
	// Retryable is false when resending the same batch cannot succeed
	// (a 4xx other than 408/429): logpipe dead-letters it.
	Retryable bool
	// RetryAfter is the aggregator's Retry-After, 0 when absent.
	RetryAfter time.Duration
	// Body is (the start of) the response body, kept for the dead letter.
	Body []byte
	Err  error
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("transport: %v", e.Err)
	}
	msg := strings.TrimSpace(string(e.Body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if e.Err != nil {
		return fmt.Sprintf("HTTP %d: %v: %s", e.Status, e.Err, msg)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// AsError classifies any error from Export: an *Error as is, anything
// else as a retryable transport error.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Retryable: true, Err: err}
}

// RetryableStatus reports whether an HTTP status is worth retrying:
// 408, 429 and every 5xx.
func RetryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// maxErrBody bounds how much of an error response is kept.
const maxErrBody = 64 << 10

// Do sends req and turns every non-2xx answer or transport failure into an
// *Error. On success it returns the response body (bounded by limit).
func Do(client *http.Client, req *http.Request, limit int64) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		// net/http quotes the whole URL in the error, and a Sumo Logic
		// source's URL carries its token in the path: keep the host only,
		// as this error reaches logs and /api/v1/status.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = hideURLPath(ue.URL)
		}
		return nil, &Error{Retryable: true, Err: err}
	}
	defer resp.Body.Close()
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, limit))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if rerr != nil {
			// The aggregator said yes but the answer broke off: we cannot
			// tell whether it was recorded, so retry (at least once).
			return nil, &Error{Status: resp.StatusCode, Retryable: true, Err: rerr}
		}
		return body, nil
	}
	if len(body) > maxErrBody {
		body = body[:maxErrBody]
	}
	return nil, &Error{
		Status:     resp.StatusCode,
		Retryable:  RetryableStatus(resp.StatusCode),
		RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Body:       body,
	}
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

var gzPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

// Gzip compresses src into dst (reset first) at BestSpeed: log bodies are
// repetitive JSON and speed matters more than the last few percent.
func Gzip(dst *bytes.Buffer, src []byte) {
	dst.Reset()
	w := gzPool.Get().(*gzip.Writer)
	w.Reset(dst)
	_, _ = w.Write(src) // bytes.Buffer writes cannot fail
	_ = w.Close()
	gzPool.Put(w)
}

// AppendString appends s as a JSON string literal.
func AppendString(b []byte, s string) []byte { return accesslog.AppendString(b, s) }

// EstimateSize is the encoded size of events with overhead bytes of
// envelope each, used to size buffers once instead of growing them.
func EstimateSize(events []Event, overhead int) int {
	n := 0
	for i := range events {
		n += len(events[i].JSON) + len(events[i].Message) + overhead
	}
	return n
}

// SplitBodies appends events to request bodies with appendEvent and calls
// emit once per body of at most maxBody bytes (an event larger than that on
// its own still gets a body of its own, for the aggregator to refuse). n is
// the number of events in the body; the body slice is reused after emit
// returns. Exporters whose body is a plain concatenation of events (HEC,
// JSON lines) share it.
func SplitBodies(events []Event, maxBody, overhead int, appendEvent func([]byte, *Event) []byte, emit func(body []byte, n int) error) error {
	return SplitRanges(events, maxBody, overhead, appendEvent, func(body []byte, lo, hi int) error { return emit(body, hi-lo) })
}

// SplitRanges is SplitBodies telling emit which events, events[lo:hi],
// the body holds.
func SplitRanges(events []Event, maxBody, overhead int, appendEvent func([]byte, *Event) []byte, emit func(body []byte, lo, hi int) error) error {
	buf := make([]byte, 0, min(EstimateSize(events, overhead), maxBody+64<<10))
	lo := 0
	for i := range events {
		start := len(buf)
		buf = appendEvent(buf, &events[i])
		if i > lo && len(buf) > maxBody {
			if err := emit(buf[:start], lo, i); err != nil {
				return err
			}
			buf = append(buf[:0], buf[start:]...)
			lo = i
		}
	}
	if lo < len(events) {
		return emit(buf, lo, len(events))
	}
	return nil
}

// hideURLPath keeps scheme and host of a URL and hides the rest.
func hideURLPath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "[redacted URL]"
	}
	if u.Path == "" && u.RawQuery == "" && u.User == nil {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + "://" + u.Host + "/[redacted]"
}
