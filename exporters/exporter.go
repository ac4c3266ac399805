// Package exporters holds what every log exporter shares: the Event they
// deliver, the Exporter interface logpipe drives, and the error type that
// tells logpipe whether a failed delivery is worth retrying. One
// subpackage per aggregator (splunk, newrelic, sumologic) implements it to
// that vendor's published protocol.
package exporters

import (
	"bytes"
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

	"github.com/klauspost/compress/gzip"
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
	// log message) for aggregators that want a message field. Like JSON
	// it is bytes, so reading a batch from the queue allocates nothing
	// per event.
	Message []byte
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

// NewRequest is http.NewRequestWithContext for a body in a buffer the
// caller reuses once Do returns (exporters pool their request buffers).
// net/http may still read a request body after the response arrived (a
// server that answers before reading it all); Do cuts such a body off, so
// the transport never reads the buffer after Do returns.
func NewRequest(ctx context.Context, method, url string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	req.Body = &reusedBody{b: body}
	req.ContentLength = int64(len(body))
	return req, nil
}

// reusedBody reads a caller's buffer until detached (Do, Close).
type reusedBody struct {
	mu  sync.Mutex
	b   []byte
	off int
}

func (r *reusedBody) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// WriteTo lets the transport write the body in large pieces (net/http
// otherwise copies it through a fresh 32 KiB buffer, a write each). Each
// piece is copied out under the lock, so the buffer is never read after
// Close, and the write itself holds no lock.
func (r *reusedBody) WriteTo(w io.Writer) (int64, error) {
	chunk := chunkPool.Get()
	defer chunkPool.Put(chunk)
	var total int64
	for {
		n, err := r.Read(*chunk)
		if n > 0 {
			m, werr := w.Write((*chunk)[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err != nil {
			return total, nil // io.EOF: all written, or cut off by Close
		}
	}
}

var chunkPool = NewFreeList(4, func() *[]byte { b := make([]byte, 256<<10); return &b })

func (r *reusedBody) Close() error {
	r.mu.Lock()
	r.b = nil
	r.mu.Unlock()
	return nil
}

// Do sends req and turns every non-2xx answer or transport failure into an
// *Error. On success it returns the response body (bounded by limit).
func Do(client *http.Client, req *http.Request, limit int64) ([]byte, error) {
	if rb, ok := req.Body.(*reusedBody); ok {
		defer rb.Close()
	}
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

// FreeList keeps up to a few reusable objects alive across garbage
// collections, unlike sync.Pool, which empties at every GC: the objects
// here are buffers of about 1 MiB and compressor states, and building
// them again after each GC costs their allocation and, worse, page
// faults on memory the runtime has meanwhile returned to the kernel.
type FreeList[T any] struct {
	ch  chan T
	new func() T
}

// NewFreeList keeps up to n objects; mk builds one when none is free.
func NewFreeList[T any](n int, mk func() T) *FreeList[T] {
	return &FreeList[T]{ch: make(chan T, n), new: mk}
}

// Get returns a free object or a new one.
func (l *FreeList[T]) Get() T {
	select {
	case v := <-l.ch:
		return v
	default:
		return l.new()
	}
}

// Put keeps v for a later Get, or drops it when the list is full.
func (l *FreeList[T]) Put(v T) {
	select {
	case l.ch <- v:
	default:
	}
}

var gzPool = NewFreeList(4, func() *gzip.Writer {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
})

// Gzip compresses src into dst (reset first) at BestSpeed: log bodies are
// repetitive JSON and speed matters more than the last few percent. It
// uses klauspost/compress, whose level 1 is about twice as fast as the
// standard library's on HEC bodies (1 MiB of access-log envelopes: 534
// vs 242 MB/s on one core) and compresses them better (14.0:1 vs 12.7:1);
// compression is the largest share of an export's CPU. Writers are pooled:
// one holds about 1 MiB of state.
func Gzip(dst *bytes.Buffer, src []byte) {
	dst.Reset()
	w := gzPool.Get()
	w.Reset(dst)
	_, _ = w.Write(src) // bytes.Buffer writes cannot fail
	_ = w.Close()
	gzPool.Put(w)
}

// EstimateSize is the encoded size of events with overhead bytes of
// envelope each, used to size buffers once instead of growing them.
func EstimateSize(events []Event, overhead int) int {
	n := 0
	for i := range events {
		n += len(events[i].JSON) + len(events[i].Message) + overhead
	}
	return n
}

// bodyPool holds request-body buffers: a batch's bodies are about 1 MiB,
// and allocating one per batch drives the garbage collector.
var bodyPool = NewFreeList(4, func() *[]byte { return new([]byte) })

// zPool holds compressed-body buffers (GetBuffer, PutBuffer).
var zPool = NewFreeList(4, func() *bytes.Buffer { return new(bytes.Buffer) })

// GetBuffer returns an empty pooled buffer for a compressed body.
func GetBuffer() *bytes.Buffer {
	b := zPool.Get()
	b.Reset()
	return b
}

// PutBuffer returns b to the pool once no request reads it (after Do).
func PutBuffer(b *bytes.Buffer) {
	if b.Cap() <= 4<<20 {
		zPool.Put(b)
	}
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
	bp := bodyPool.Get()
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= 4<<20 {
			*bp = buf[:0]
			bodyPool.Put(bp)
		}
	}()
	if want := min(EstimateSize(events, overhead), maxBody+64<<10); cap(buf) < want {
		buf = make([]byte, 0, want)
	}
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
