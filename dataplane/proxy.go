package dataplane

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/dataplane/internal/h1"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/policy"
)

// Envoy response flags used in access-log records.
const (
	flagNoRoute         = "NR"
	flagConnectFailure  = "UF"
	flagNoHealthy       = "UH"
	flagTimeout         = "UT"
	flagRetryExhausted  = "URX"
	flagDownstreamClose = "DC"
	flagUpstreamReset   = "UR"
	flagUpstreamClosed  = "UC"
	flagOverflow        = "UO"
	flagStreamIdle      = "SI"
)

// reqState is the per-request scratch of the proxy, pooled. It is the
// policy.Recorder, and it is found through the request context (stateKey)
// by the proxy at the end of a policy chain: on the h1 server through the
// connection's connCtx, elsewhere by being the request's context itself.
type reqState struct {
	context.Context

	dp       *DataPlane
	ln       *lnHandler
	rec      accesslog.Record
	head     bool // a HEAD request: error answers carry no Content-Type
	route    *route
	rule     *ir.Rule
	rest     string
	destPath string
	upPath   string // the rewritten upstream path (rules with captures)
	// upgrade is set for a WebSocket upgrade request (the only upgrade
	// forwarded); its Upgrade and Connection headers are gone by then.
	upgrade  bool
	start    time.Time
	reqID    string
	reqIDv   [1]string // backs the X-Request-Id header policies see
	xff      string
	flags    string
	status   int
	svc      *service
	upTime   time.Duration
	bytesIn  int64
	bytesOut int64
	abort    bool
	// clientGone is set when the client closed its connection while we
	// waited for the upstream (the h1 server's watch).
	clientGone bool

	policyName, policyOutcome string
	// auth is the request's policy.Authentication, found through the
	// request context like the state itself (policy.AuthKey).
	auth policy.AuthSlot

	hdr   http.Header // upstream response head, reused
	extra []string    // headers added by the UpstreamAttempt hook (k, v pairs)
	// dispatch are the policies' hooks on the request as it leaves
	// (policy.OnDispatch), run per attempt.
	dispatch []policy.DispatchHook
	setHdr   func(k, v string)
	sw       statusWriter
	chunked  h1.ChunkedReader
	up       h1.Response
	// idleConn and idleUntil arm the stream idle timeout while a response
	// body is relayed: before each wait for the upstream the read deadline
	// becomes the sooner of the route deadline and now + stream idle.
	idleConn  net.Conn
	idleUntil time.Time
	idleFor   time.Duration
}

// armIdle sets the upstream read deadline before a blocking read of the
// response body (no-op when the stream idle timeout is not armed).
func (st *reqState) armIdle() {
	if st.idleConn == nil {
		return
	}
	d := time.Now().Add(st.idleFor)
	if st.idleUntil.Before(d) {
		d = st.idleUntil
	}
	_ = st.idleConn.SetReadDeadline(d)
}

type stateKey struct{}

var statePool = sync.Pool{New: func() any {
	st := &reqState{hdr: make(http.Header, 16)}
	st.setHdr = st.addExtra
	return st
}}

func (st *reqState) addExtra(k, v string) { st.extra = append(st.extra, k, v) }

// Value makes reqState a context whose stateKey, policy.RecorderKey and
// policy.DispatcherKey are itself and whose policy.AuthKey is its auth
// slot.
func (st *reqState) Value(k any) any {
	if v := st.value(k); v != nil {
		return v
	}
	return st.Context.Value(k)
}

// value answers the keys the request state owns, or nil.
func (st *reqState) value(k any) any {
	switch k.(type) {
	case stateKey, policy.RecorderKey, policy.DispatcherKey:
		return st
	case policy.AuthKey:
		return &st.auth
	}
	return nil
}

// OnDispatch implements policy.Dispatcher.
func (st *reqState) OnDispatch(h policy.DispatchHook) { st.dispatch = append(st.dispatch, h) }

// runDispatch runs the dispatch hooks for one attempt on the request as
// it is about to be written (path after rewrites, the endpoint's host,
// the headers forwarded as they are) and sets the headers they return on
// r, so the writer sends them.
func (st *reqState) runDispatch(r *http.Request, ep *endpoint, prefix string) {
	var pb strings.Builder
	writeUpstreamPath(&pb, st, prefix, r)
	scheme := "http"
	if ep.svc.cfg.Protocol == ir.HTTPS {
		scheme = "https"
	}
	up := &policy.UpstreamRequest{Method: r.Method, Scheme: scheme, Host: st.upstreamHost(ep, r), Path: pb.String(), Header: make(http.Header, len(r.Header)), ContentLength: r.ContentLength}
	if r.URL.RawQuery != "" {
		up.RawQuery = requestQuery(r)
	}
	if hasNoBody(r) {
		up.ContentLength = 0
	}
	connHdr := r.Header["Connection"]
	for k, vv := range r.Header {
		if !skipRequestHeaders[k] && !connectionListed(connHdr, k) && !setByHook(st.extra, k) {
			up.Header[k] = vv
		}
	}
	for _, h := range st.dispatch {
		for k, vs := range h(up) {
			k = http.CanonicalHeaderKey(k)
			r.Header[k] = vs
			up.Header[k] = vs
		}
	}
}

// Decide implements policy.Recorder: a denial wins over any other outcome.
func (st *reqState) Decide(name, outcome string) {
	if st.policyOutcome == policy.Denied && outcome != policy.Denied {
		return
	}
	st.policyName, st.policyOutcome = name, outcome
}

func (st *reqState) reset() {
	extra := st.extra[:0]
	hdr := st.hdr
	clear(hdr)
	setHdr := st.setHdr
	*st = reqState{hdr: hdr, extra: extra, setHdr: setHdr}
}

// addFlag appends an Envoy response flag ("UF,URX").
func (st *reqState) addFlag(f string) {
	if st.flags == "" {
		st.flags = f
	} else {
		st.flags += "," + f
	}
}

// lnHandler serves one listener.
type lnHandler struct {
	dp     *DataPlane
	addr   string
	name   string
	scheme string
}

func (h *lnHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dp := h.dp
	st := statePool.Get().(*reqState)
	st.start = time.Now()
	st.dp, st.ln = dp, h
	// On the h1 server the request's context is the connection's connCtx:
	// pointing it at st makes st reachable (proxyFromChain, policy
	// decisions) without wrapping the request. Elsewhere (net/http) the
	// policy chain gets a request whose context is st.
	cc, inline := r.Context().(*connCtx)
	if inline {
		cc.st = st
	}

	st.reqID = requestID(r)
	st.head = r.Method == http.MethodHead
	st.stripHopByHop(r)
	var rt *route
	pathOK := h.normalizeRequest(st, w, r)
	if lr := dp.table.Load().listeners[h.addr]; lr != nil && pathOK {
		rt, st.rule, st.rest = lr.match(r)
	}
	st.route = rt

	var done observe.RequestDone
	if dp.hooks.Request != nil {
		info := observe.RequestInfo{Listener: h.name, Method: r.Method, Header: r.Header.Get}
		if rt != nil {
			info.API, info.Route = rt.api.key, rt.name
		}
		var ctx context.Context
		ctx, done = dp.hooks.Request(r.Context(), info)
		if ctx != nil && ctx != r.Context() {
			r = r.WithContext(ctx)
		}
	}

	switch {
	case !pathOK:
		// Answered by normalizeRequest.
	case rt == nil:
		st.writeError(w, http.StatusNotFound, flagNoRoute, "no route for "+r.Method+" "+requestPath(r))
	case st.upgrade && rt.noWS:
		// Refused before any policy runs, as Envoy refuses an upgrade
		// its route disables (403, upgrade_failed).
		st.writeError(w, http.StatusForbidden, "", "WebSocket upgrades are disabled for this route")
	case rt.chain != nil:
		// Policies run after routing, so an unknown path is a plain 404
		// without paying for authentication or rate limiting.
		// Policies see the request id in the request headers, generated
		// or kept, as Envoy's filters do (message logging, expressions,
		// denial bodies). The upstream request writes st.reqID itself.
		if v := r.Header["X-Request-Id"]; len(v) != 1 || v[0] != st.reqID {
			if r.Header == nil {
				r.Header = http.Header{}
			}
			st.reqIDv[0] = st.reqID
			r.Header["X-Request-Id"] = st.reqIDv[:1:1]
		}
		st.sw = statusWriter{ResponseWriter: w}
		if !inline {
			st.Context = r.Context()
			r = r.WithContext(st)
		}
		rt.chain.ServeHTTP(&st.sw, r)
		if st.sw.status != 0 {
			st.status = st.sw.status
		}
		st.bytesOut = max(st.bytesOut, st.sw.bytes) // a tunnel bypasses sw
	default:
		dp.forward(st, w, r)
	}
	abort := st.abort
	// Policies do not keep the request or its context past their return
	// (policy.Middleware), so the state is always recycled.
	h.finish(st, r, done)
	if inline {
		cc.st = nil
	}
	if abort {
		// The response was cut short after its head was sent: make the
		// client see a broken response, not a complete-looking one.
		panic(http.ErrAbortHandler)
	}
}

// proxyFromChain is the innermost handler of a policy chain.
func (dp *DataPlane) proxyFromChain(w http.ResponseWriter, r *http.Request) {
	st, _ := r.Context().Value(stateKey{}).(*reqState)
	if st == nil {
		http.Error(w, "flexgw: request state missing", http.StatusInternalServerError)
		return
	}
	dp.forward(st, w, r)
}

// finish writes the access-log record, ends the hooks and recycles st.
func (h *lnHandler) finish(st *reqState, r *http.Request, done observe.RequestDone) {
	dp := h.dp
	if dp.sink != nil || done != nil {
		rec := &st.rec
		rec.StartTime = st.start
		rec.Method = r.Method
		rec.Path = r.RequestURI
		if r.ProtoMajor == 2 {
			rec.Protocol = "HTTP/2"
		} else {
			rec.Protocol = r.Proto
		}
		rec.ResponseCode = st.status
		rec.ResponseFlags = st.flags
		rec.BytesReceived = st.bytesIn
		rec.BytesSent = st.bytesOut
		rec.Duration = time.Since(st.start)
		rec.UpstreamServiceTime = st.upTime
		rec.XForwardedFor = st.xff
		if rec.XForwardedFor == "" {
			rec.XForwardedFor = r.Header.Get("X-Forwarded-For")
		}
		rec.UserAgent = r.Header.Get("User-Agent")
		rec.RequestID = st.reqID
		rec.Authority = r.Host
		rec.DownstreamRemoteAddress = r.RemoteAddr
		if st.route != nil {
			rec.APIInstance = st.route.api.key
			rec.Route = st.route.name
		}
		rec.GatewayID = dp.opts.GatewayID
		rec.Policy, rec.PolicyOutcome = st.policyName, st.policyOutcome
		if done != nil {
			t := observe.Timings{Total: rec.Duration, Upstream: st.upTime, RequestBytes: st.bytesIn, ResponseBytes: st.bytesOut}
			if st.svc != nil {
				t.Service = st.svc.key
			}
			done(rec, t)
		}
		if dp.sink != nil {
			dp.sink.Write(rec)
		}
	}
	st.reset()
	statePool.Put(st)
}

// writeError answers with the JSON error body every gateway error uses.
func (st *reqState) writeError(w http.ResponseWriter, status int, flag, msg string) {
	if flag != "" {
		st.addFlag(flag)
	}
	st.status = status
	bp := copyBufPool.Get().(*[]byte)
	b := append((*bp)[:0], `{"error":`...)
	b = accesslog.AppendString(b, msg)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"request_id":`...)
	b = accesslog.AppendString(b, st.reqID)
	b = append(b, "}\n"...)
	h := w.Header()
	if !st.head {
		// A HEAD answer has no body: naming its type would have clients
		// (the Gateway API suite's) read an empty JSON document.
		h["Content-Type"] = jsonContentType
	}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	h["X-Request-Id"] = []string{st.reqID}
	w.WriteHeader(status)
	n, _ := w.Write(b)
	st.bytesOut += int64(n)
	*bp = b
	copyBufPool.Put(bp)
}

var jsonContentType = []string{"application/json"}

func noWatch() bool { return true }

// watchClientAfter is how long an upstream may take to start answering
// before the h1 server also watches the client connection for a close.
// Fast answers (nearly all) cost no watcher goroutine at all; net/http
// pays one per request.
const watchClientAfter = time.Second

// awaitResponse waits for the first byte of the upstream response. When
// it takes longer than watchClientAfter, the h1 client connection is
// watched meanwhile; a client that leaves ends the wait at once (DC)
// instead of holding the upstream until the route timeout.
func (st *reqState) awaitResponse(ctx context.Context, up *upConn, client *h1.Conn, deadline time.Time) error {
	_, err := up.br.Peek(1)
	if err == nil {
		return up.conn.SetReadDeadline(deadline)
	}
	// A cancelled request (stream-idle-timeout-flex) poisoned the
	// deadline on purpose: re-arming it would wait for the route timeout.
	if !isTimeout(err) || !time.Now().Before(deadline) || ctx.Err() != nil {
		return err
	}
	// Arm the route deadline before the watcher may poison it.
	_ = up.conn.SetReadDeadline(deadline)
	if ctx.Err() != nil {
		// Cancelled while re-arming: poison it again.
		_ = up.conn.SetReadDeadline(aLongTimeAgo)
	}
	stop := client.Watch(func() { _ = up.conn.SetReadDeadline(aLongTimeAgo) })
	_, err = up.br.Peek(1)
	if stop() {
		st.clientGone = true
		return context.Canceled
	}
	return err
}

// aLongTimeAgo is a deadline in the past: setting it unblocks I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// requestID keeps the client's x-request-id (up to 128 bytes) or makes a
// random UUIDv4, the format Envoy generates.
func requestID(r *http.Request) string {
	if v := r.Header["X-Request-Id"]; len(v) > 0 && v[0] != "" && len(v[0]) <= 128 {
		return v[0]
	}
	return newUUID()
}

func newUUID() string {
	var b [36]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 4<<12   // version 4
	lo = lo&^(0x3<<62) | 0x2<<62 // RFC 4122 variant
	put := func(dst []byte, v uint64, n int) {
		for i := n - 1; i >= 0; i-- {
			dst[i] = hexdig[v&0xf]
			v >>= 4
		}
	}
	put(b[0:8], hi>>32, 8)
	b[8] = '-'
	put(b[9:13], hi>>16, 4)
	b[13] = '-'
	put(b[14:18], hi, 4)
	b[18] = '-'
	put(b[19:23], lo>>48, 4)
	b[23] = '-'
	put(b[24:36], lo, 12)
	return string(b[:])
}

const hexdig = "0123456789abcdef"

func isIdempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// hasNoBody reports whether the request carries no body, so it can be
// sent again after a failed attempt.
func hasNoBody(r *http.Request) bool {
	return r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
}

// attempt outcomes.
type outcome int

const (
	outDone        outcome = iota // a response (or abort) was relayed
	outConnectFail                // no connection: retryable
	outTimeout                    // route timeout before a response head
	outUpstreamErr                // the upstream broke the exchange before a response head
	outClientErr                  // reading the request body from the client failed
)

// forward sends the request to the route's upstream and relays the answer.
func (dp *DataPlane) forward(st *reqState, w http.ResponseWriter, r *http.Request) {
	rt := st.route
	w = routeHeaders(rt, w, r)
	if rt.redirect != nil || rt.direct != nil {
		st.answer(w, r)
		return
	}
	di := weightedPick(rt.cum)
	if d := rt.destDirect[di]; d != nil {
		st.writeDirect(w, r, d)
		return
	}
	svc := rt.dests[di]
	prefix := rt.prefix[di]
	st.svc = svc
	st.destPath = rt.dpath[di]
	if svc.maxRequests > 0 {
		if svc.active.Add(1) > svc.maxRequests {
			svc.active.Add(-1)
			st.writeError(w, http.StatusServiceUnavailable, flagOverflow, "upstream overflow: service "+svc.key+" has too many requests in flight")
			return
		}
		defer svc.active.Add(-1)
	}
	st.rec.UpstreamCluster = svc.key
	if r.ProtoMajor == 2 && r.Context().Err() != nil {
		// The client reset the stream before it was dispatched (h2 rapid
		// reset): no upstream request for it.
		st.addFlag(flagDownstreamClose)
		st.status = 0
		return
	}
	if !st.rewrite(r) {
		st.writeError(w, http.StatusBadRequest, "", "the route's rewrite leaves its destination path")
		return
	}
	if len(rt.mirrors) > 0 && !st.upgrade {
		defer dp.mirrorAfter(st, r)()
	}

	if st.upgrade {
		dp.forwardUpgrade(st, w, r, svc, prefix)
		return
	}
	if svc.h2 != nil {
		dp.forwardH2(st, w, r, svc, prefix)
		return
	}
	deadline := st.start.Add(rt.timeout)
	retries := 0
	if isIdempotent(r.Method) && hasNoBody(r) {
		retries = rt.retries
	}
	var avoid *endpoint
	for n := 0; ; n++ {
		ep := svc.pick(avoid)
		if ep == nil {
			st.writeError(w, http.StatusServiceUnavailable, flagNoHealthy, "no healthy upstream for service "+svc.key)
			return
		}
		st.rec.UpstreamHost = ep.addr
		out, err := dp.attempt(st, ep, prefix, w, r, deadline, n)
		switch out {
		case outDone:
			return
		case outConnectFail:
			ep.reportResult(true)
			if n < retries && time.Now().Before(deadline) {
				avoid = ep
				continue
			}
			if retries > 0 {
				st.addFlag(flagConnectFailure)
				st.writeError(w, http.StatusBadGateway, flagRetryExhausted, "upstream connect error: "+errText(err))
				return
			}
			st.writeError(w, http.StatusBadGateway, flagConnectFailure, "upstream connect error: "+errText(err))
		case outTimeout:
			ep.reportResult(true)
			st.writeError(w, http.StatusGatewayTimeout, flagTimeout, "upstream request timeout")
		case outUpstreamErr:
			ep.reportResult(true)
			st.writeError(w, http.StatusBadGateway, flagUpstreamClosed, "upstream connection closed: "+errText(err))
		case outClientErr:
			if errors.Is(context.Cause(r.Context()), policy.ErrStreamIdleTimeout) && !st.clientGone {
				st.writeError(w, http.StatusGatewayTimeout, flagStreamIdle, "stream timeout")
				return
			}
			if r.Context().Err() != nil || st.clientGone {
				// The client is gone: nothing to answer, and net/http
				// must not write its default 200 either.
				st.addFlag(flagDownstreamClose)
				st.status = 0
				st.abort = true
				return
			}
			if isTimeout(err) {
				st.writeError(w, http.StatusRequestTimeout, flagDownstreamClose, "request body timed out")
				return
			}
			st.writeError(w, http.StatusBadRequest, flagDownstreamClose, "invalid request body: "+errText(err))
		}
		return
	}
}

func errText(err error) string {
	if err == nil {
		return "unknown error"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil && op.Addr != nil {
		return op.Op + " " + op.Addr.String() + ": " + op.Err.Error()
	}
	return err.Error()
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var errUnaskedSwitch = errors.New("upstream switched protocols without an upgrade request")

// clientBodyError marks a failure to read the request body from the client.
type clientBodyError struct{ err error }

func (e clientBodyError) Error() string { return "reading request body: " + e.err.Error() }
func (e clientBodyError) Unwrap() error { return e.err }

// attempt runs one exchange with ep over a pooled (or new) connection.
func (dp *DataPlane) attempt(st *reqState, ep *endpoint, prefix string, w http.ResponseWriter, r *http.Request, deadline time.Time, n int) (out outcome, err error) {
	var hookDone observe.AttemptDone
	st.extra = st.extra[:0]
	if dp.hooks.UpstreamAttempt != nil {
		hookDone = dp.hooks.UpstreamAttempt(r.Context(), st.setHdr, observe.AttemptInfo{
			API: st.route.api.key, Route: st.route.name, Service: ep.svc.key,
			Endpoint: ep.addr, Attempt: n, Method: r.Method, Path: r.URL.Path,
		})
	}
	ep.inflight.Add(1)
	now := time.Now()
	c := ep.getIdle(now)
	reused := c != nil
	for {
		if c == nil {
			c, err = ep.dial(deadline)
			if err != nil {
				ep.inflight.Add(-1)
				if hookDone != nil {
					hookDone(0, err)
				}
				if isTimeout(err) && !time.Now().Before(deadline) {
					return outTimeout, err
				}
				return outConnectFail, err
			}
		}
		// The route deadline bounds the exchange. A request without a body
		// cannot block on writing (its head fits the socket buffer), so
		// only reads need the timer; each deadline is one runtime timer
		// update on the hot path.
		// On the h1 server a slow upstream is first given watchClientAfter;
		// past that, awaitResponse watches the client too.
		hc := h1.ClientOf(w)
		readDeadline := deadline
		if hc != nil {
			if short := time.Now().Add(watchClientAfter); short.Before(deadline) {
				readDeadline = short
			} else {
				hc = nil
			}
		}
		if hasNoBody(r) {
			if c.writeDeadline {
				_ = c.conn.SetWriteDeadline(time.Time{})
				c.writeDeadline = false
			}
			_ = c.conn.SetReadDeadline(readDeadline)
		} else {
			_ = c.conn.SetWriteDeadline(deadline)
			_ = c.conn.SetReadDeadline(readDeadline)
			c.writeDeadline = true
		}
		upStart := time.Now()
		// A client that goes away while we wait for the upstream unblocks
		// the exchange at once (DC) instead of holding it to the timeout.
		stopWatch := noWatch
		if r.Context().Done() != nil {
			cc := c
			stopWatch = context.AfterFunc(r.Context(), func() { _ = cc.conn.SetDeadline(aLongTimeAgo) })
		}
		var bodyStarted bool
		bodyStarted, err = dp.writeRequest(st, c, ep, prefix, r, false)
		if err == nil && hc != nil {
			err = st.awaitResponse(r.Context(), c, hc, deadline)
		}
		if err == nil {
			err = c.readResponseHead(&st.up, st.hdr)
			if err == nil && st.up.Status == http.StatusSwitchingProtocols {
				// Only a WebSocket handshake (forwardUpgrade) may switch
				// protocols; here it would open a tunnel nothing polices.
				err = errUnaskedSwitch
			}
		}
		if !stopWatch() && err == nil {
			// The client left just as the head arrived; the deadline is
			// poisoned, so give up the connection and the response.
			err = context.Canceled
		}
		if err != nil {
			c.conn.Close()
			var cbe clientBodyError
			if errors.As(err, &cbe) || r.Context().Err() != nil || st.clientGone {
				ep.inflight.Add(-1)
				if hookDone != nil {
					hookDone(0, err)
				}
				return outClientErr, err
			}
			// A pooled connection the upstream closed while idle: try
			// once more on a fresh one if the request can be replayed.
			if reused && !bodyStarted && hasNoBody(r) && isIdempotent(r.Method) && !isTimeout(err) {
				reused, c = false, nil
				clear(st.hdr)
				continue
			}
			ep.inflight.Add(-1)
			if hookDone != nil {
				hookDone(0, err)
			}
			if isTimeout(err) {
				return outTimeout, err
			}
			return outUpstreamErr, err
		}
		st.upTime = time.Since(upStart)
		break
	}
	res := &st.up
	if hookDone != nil {
		hookDone(res.Status, nil)
	}
	ep.reportResult(res.Status == 502 || res.Status == 503 || res.Status == 504)
	// A stream idle timeout shorter than what is left of the route
	// deadline bounds each wait for the next body bytes.
	if idle := st.route.streamIdle; idle > 0 && time.Now().Add(idle).Before(deadline) {
		st.idleConn, st.idleUntil, st.idleFor = c.conn, deadline, idle
	}
	reusable := dp.relayResponse(st, c, w, r, res)
	st.idleConn = nil
	ep.inflight.Add(-1)
	if reusable {
		// The deadline is left as is: nothing reads an idle connection,
		// and the next request sets its own.
		ep.putIdle(c, time.Now())
	} else {
		c.conn.Close()
	}
	return outDone, nil
}

// relayResponse writes the upstream response head and streams its body to
// w. It reports whether the upstream connection may be reused.
func (dp *DataPlane) relayResponse(st *reqState, c *upConn, w http.ResponseWriter, r *http.Request, res *h1.Response) bool {
	dst := w.Header()
	for k, v := range st.hdr {
		dst[k] = v
	}
	st.status = res.Status
	w.WriteHeader(res.Status)

	noBody := r.Method == http.MethodHead || res.Status == 204 || res.Status == 304 || res.Status < 200
	if noBody {
		return !res.Close
	}
	var err error
	var werr bool
	switch {
	case res.ContentLength >= 0:
		err, werr = st.copyLength(w, c.br, res.ContentLength)
	case res.Chunked:
		st.chunked.Reset(c.br)
		st.chunked.SetTrailerLimits(dp.opts.MaxHeaders, h1.MaxResponseHead)
		err, werr = st.copyChunked(w)
	default:
		// Close-delimited body: read to EOF, never reuse.
		err, werr = st.copyUntilEOF(w, c.br)
		res.Close = true
	}
	if err != nil {
		if werr {
			st.addFlag(flagDownstreamClose)
		} else {
			if isTimeout(err) {
				st.addFlag(flagTimeout)
			} else {
				st.addFlag(flagUpstreamReset)
			}
			st.abort = true
		}
		return false
	}
	return !res.Close
}

// flushTo flushes w if it can be flushed (through wrappers too).
func flushTo(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w).Flush()
}

// copyLength relays exactly n bytes. It writes straight out of the
// connection's read buffer and flushes whenever it is about to wait for
// the upstream, so streamed responses reach the client as they arrive.
func (st *reqState) copyLength(w http.ResponseWriter, br *bufio.Reader, n int64) (err error, writeErr bool) {
	for n > 0 {
		if br.Buffered() == 0 {
			st.armIdle()
			if _, err := br.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err, false
			}
		}
		k := min(int64(br.Buffered()), n)
		b, _ := br.Peek(int(k))
		m, err := w.Write(b)
		st.bytesOut += int64(m)
		_, _ = br.Discard(int(k))
		if err != nil {
			return err, true
		}
		n -= k
		if n > 0 && br.Buffered() == 0 {
			flushTo(w)
		}
	}
	return nil, false
}

func (st *reqState) copyChunked(w http.ResponseWriter) (err error, writeErr bool) {
	cr := &st.chunked
	for {
		if cr.Buffered() == 0 {
			st.armIdle()
		}
		b, err := cr.Peek(upReadBufSize)
		if err == io.EOF {
			relayTrailers(w.Header(), cr.Trailers())
			return nil, false
		}
		if err != nil {
			return err, false
		}
		m, werr := w.Write(b)
		st.bytesOut += int64(m)
		if werr != nil {
			return werr, true
		}
		if err := cr.Advance(len(b)); err != nil {
			return err, false
		}
		if cr.Buffered() == 0 {
			flushTo(w)
		}
	}
}

// relayTrailers hands an upstream's trailer fields (already filtered by
// h1.TrailerAllowed) to the client's writer in net/http's prefix form,
// which every server of the data plane writes after the body: an
// HTTP/1.1 trailer section on a chunked response, HTTP/2 trailers.
func relayTrailers(dst, tr http.Header) {
	for k, vv := range tr {
		dst[http.TrailerPrefix+k] = vv
	}
}

func (st *reqState) copyUntilEOF(w http.ResponseWriter, br *bufio.Reader) (err error, writeErr bool) {
	for {
		if br.Buffered() == 0 {
			st.armIdle()
			if _, err := br.Peek(1); err != nil {
				if err == io.EOF {
					return nil, false
				}
				return err, false
			}
		}
		b, _ := br.Peek(br.Buffered())
		m, err := w.Write(b)
		st.bytesOut += int64(m)
		_, _ = br.Discard(len(b))
		if err != nil {
			return err, true
		}
		if br.Buffered() == 0 {
			flushTo(w)
		}
	}
}

// statusWriter records what a policy chain sent, for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher.
func (s *statusWriter) Flush() { flushTo(s.ResponseWriter) }

// Unwrap lets http.ResponseController reach the server's writer (Hijack).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

var (
	_ policy.Recorder = (*reqState)(nil)
	_ context.Context = (*reqState)(nil)
	_ http.Flusher    = (*statusWriter)(nil)
	_ http.Handler    = (*lnHandler)(nil)
)
