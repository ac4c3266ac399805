package dataplane

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/flexgw/flexgw/dataplane/internal/h1"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/policy"
)

// newH2Transport is the client for services that speak HTTP/2 upstream
// (h2 over TLS, h2c in clear). HTTP/2 multiplexes, so net/http's
// transport (one connection, many streams) is the right tool there.
func newH2Transport(s *service) *http.Transport {
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: s.connectTimeout(), KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     s.tls,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     s.idleTimeout(),
		Protocols:           new(http.Protocols),
	}
	if s.cfg.Protocol == ir.HTTPS {
		t.Protocols.SetHTTP2(true)
	} else {
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	return t
}

// forwardH2 relays a request to an HTTP/2 service.
func (dp *DataPlane) forwardH2(st *reqState, w http.ResponseWriter, r *http.Request, svc *service, prefix string) {
	ep := svc.pick(nil)
	if ep == nil {
		st.writeError(w, http.StatusServiceUnavailable, flagNoHealthy, "no healthy upstream for service "+svc.key)
		return
	}
	st.rec.UpstreamHost = ep.addr
	ctx, cancel := context.WithDeadline(r.Context(), st.start.Add(st.route.timeout))
	defer cancel()
	scheme := "http"
	if svc.cfg.Protocol == ir.HTTPS {
		scheme = "https"
	}
	var pb strings.Builder
	writeUpstreamPath(&pb, st, prefix, r)
	target := scheme + "://" + ep.addr + pb.String()
	if r.URL.RawQuery != "" {
		target += "?" + requestQuery(r)
	}
	body := r.Body
	if hasNoBody(r) {
		body = http.NoBody
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, target, body)
	if err != nil {
		st.writeError(w, http.StatusBadRequest, "", "cannot forward request: "+err.Error())
		return
	}
	out.ContentLength = r.ContentLength
	out.Host = st.upstreamHost(ep, r)
	if body != http.NoBody && len(r.Trailer) > 0 && h1.FilterTrailers(r.Trailer) {
		// The client declared its trailers (HTTP/2 requires it): the
		// transport announces them and sends their values from this same
		// map, which the server fills when the body ends.
		out.Trailer = r.Trailer
	}
	if len(st.dispatch) > 0 {
		st.runDispatch(r, ep, prefix)
	}
	connHdr := r.Header["Connection"]
	for k, vv := range r.Header {
		if skipRequestHeaders[k] || connectionListed(connHdr, k) {
			continue
		}
		out.Header[k] = vv
	}
	if te := r.Header.Get("Te"); h1.EqualFold(te, "trailers") {
		out.Header.Set("Te", "trailers") // gRPC needs it end to end
	}
	st.xff = forwardedFor(r)
	out.Header.Set("X-Forwarded-For", st.xff)
	out.Header.Set("X-Forwarded-Proto", st.ln.scheme)
	out.Header.Set("X-Forwarded-Host", r.Host)
	out.Header.Set("X-Request-Id", st.reqID)
	var hookDone observe.AttemptDone
	if dp.hooks.UpstreamAttempt != nil {
		hookDone = dp.hooks.UpstreamAttempt(r.Context(), out.Header.Set, observe.AttemptInfo{
			API: st.route.api.key, Route: st.route.name, Service: svc.key,
			Endpoint: ep.addr, Method: r.Method, Path: out.URL.Path,
		})
	}
	ep.inflight.Add(1)
	defer ep.inflight.Add(-1)
	upStart := time.Now()
	resp, err := svc.h2.RoundTrip(out)
	if hookDone != nil {
		if err != nil {
			hookDone(0, err)
		} else {
			hookDone(resp.StatusCode, nil)
		}
	}
	if err != nil {
		ep.reportResult(true)
		switch {
		case ctx.Err() == context.DeadlineExceeded:
			st.writeError(w, http.StatusGatewayTimeout, flagTimeout, "upstream request timeout")
		case errors.Is(context.Cause(r.Context()), policy.ErrStreamIdleTimeout):
			st.writeError(w, http.StatusGatewayTimeout, flagStreamIdle, "stream timeout")
		case r.Context().Err() != nil:
			st.addFlag(flagDownstreamClose)
			st.abort = true
		default:
			st.writeError(w, http.StatusBadGateway, flagConnectFailure, "upstream error: "+errText(err))
		}
		return
	}
	defer resp.Body.Close()
	st.upTime = time.Since(upStart)
	ep.reportResult(resp.StatusCode == 502 || resp.StatusCode == 503 || resp.StatusCode == 504)
	dst := w.Header()
	for k, vv := range resp.Header {
		if h1.HopHeaders[k] {
			continue
		}
		dst[k] = vv
	}
	for k := range resp.Trailer {
		if h1.TrailerAllowed(k) {
			dst.Add("Trailer", k)
		}
	}
	st.status = resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			st.bytesOut += int64(m)
			if werr != nil {
				st.addFlag(flagDownstreamClose)
				return
			}
			flushTo(w)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if ctx.Err() == context.DeadlineExceeded {
				st.addFlag(flagTimeout)
			} else {
				st.addFlag(flagUpstreamReset)
			}
			st.abort = true
			return
		}
	}
	h1.FilterTrailers(resp.Trailer)
	relayTrailers(dst, resp.Trailer)
}
