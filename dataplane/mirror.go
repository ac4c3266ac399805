package dataplane

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// Mirror copies are fire and forget: they must never slow or fail the
// request they copy. A copy is sent once the request's own exchange is
// over, with the body the upstream read (kept up to maxMirrorBody; a
// larger or unfinished body is not mirrored), and dropped when
// maxMirrorsInFlight copies are already on their way.
const (
	maxMirrorBody      = 256 << 10
	maxMirrorsInFlight = 64
)

var mirrorSlots = make(chan struct{}, maxMirrorsInFlight)

// mirrorTo is one mirror of a route: its service and the share of
// requests it gets, per million.
type mirrorTo struct {
	svc        *service
	perMillion uint32
}

// teeBody keeps a copy of what the upstream read of the request body.
// mu guards the copy: the HTTP/2 transport reads the body from its own
// goroutine, which may still be in Read after the response ended and
// the copy is taken.
type teeBody struct {
	io.ReadCloser
	mu   sync.Mutex
	buf  []byte
	over bool // more than maxMirrorBody: no copy kept
	eof  bool
}

// complete is the whole body read so far, or false when the upstream did
// not read it to the end or it was too large to keep.
func (b *teeBody) complete() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.over || !b.eof {
		return nil, false
	}
	return b.buf, true
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.eof {
		return n, err // a copy may be in use: keep it as it was at EOF
	}
	if !b.over {
		if len(b.buf)+n > maxMirrorBody {
			b.over, b.buf = true, nil
		} else {
			b.buf = append(b.buf, p[:n]...)
		}
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// mirrorAfter prepares the copies of r for the route's mirrors and
// returns what sends them, to run when the request's exchange is over.
func (dp *DataPlane) mirrorAfter(st *reqState, r *http.Request) func() {
	var tee *teeBody
	if !hasNoBody(r) {
		tee = &teeBody{ReadCloser: r.Body}
		r.Body = tee
	}
	// The headers as the policy chain left them, taken now: the dispatch
	// hooks (policy.OnDispatch, Envoy's upstream filters) later set
	// headers on r for the primary upstream only, such as a signature
	// bound to its host, which Envoy's shadow request does not carry.
	h := make(http.Header, len(r.Header))
	connHdr := r.Header["Connection"]
	for k, vv := range r.Header {
		if !skipRequestHeaders[k] && !connectionListed(connHdr, k) {
			h[k] = append([]string(nil), vv...)
		}
	}
	h.Set("X-Request-Id", st.reqID)
	return func() {
		var body []byte
		if tee != nil {
			var ok bool
			if body, ok = tee.complete(); !ok {
				return
			}
		}
		// The path the request's own upstream got (Envoy's shadow
		// request is the rewritten request too).
		target := requestPath(r)
		if q := requestQuery(r); q != "" {
			target += "?" + q
		}
		target = ir.RewritePath(st.route.api.base, st.rule, st.destPath, st.svc.cfg.BasePath, target)
		for _, mt := range st.route.mirrors {
			if mt.perMillion < ir.MirrorAll && rand.Uint32N(ir.MirrorAll) >= mt.perMillion {
				continue
			}
			m := mt.svc
			select {
			case mirrorSlots <- struct{}{}:
			default:
				dp.log.Debug("mirror copy dropped: too many in flight", "route", st.route.name, "service", m.key)
				continue
			}
			go dp.sendMirror(m, r.Method, target, h.Clone(), body, st.route.timeout)
		}
	}
}

// sendMirror sends one copy to an endpoint of svc and drops the answer.
func (dp *DataPlane) sendMirror(svc *service, method, target string, h http.Header, body []byte, timeout time.Duration) {
	defer func() { <-mirrorSlots }()
	ep := svc.pick(nil)
	tr := svc.mirrorTransport()
	if ep == nil || tr == nil {
		return
	}
	scheme := "http"
	if svc.tls != nil {
		scheme = "https"
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, scheme+"://"+ep.addr+target, bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header, req.Host = h, ep.host
	if len(body) == 0 {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		dp.log.Debug("mirror copy failed", "service", svc.key, "error", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

// mirrorTransport is the service's transport for mirror copies, made on
// first use (most services are never mirrored to); nil once the service
// is closed.
func (s *service) mirrorTransport() http.RoundTripper {
	if s.h2 != nil {
		return s.h2
	}
	s.mirrorOnce.Do(func() {
		d := &net.Dialer{Timeout: s.connectTimeout()}
		s.mirrorTr = &http.Transport{
			DialContext: d.DialContext, TLSClientConfig: s.tls,
			MaxIdleConnsPerHost: 4, IdleConnTimeout: s.idleTimeout(),
		}
	})
	if s.closed.Load() {
		s.mirrorTr.CloseIdleConnections()
		return nil
	}
	return s.mirrorTr
}
