// Package hookproxy is a stand-in for flexgw's built-in data plane, used by
// the telemetry tests and benchmarks: a minimal reverse proxy to one
// upstream that calls observe.Hooks exactly as the built-in data plane
// specifies (Request at routing time, UpstreamAttempt around each upstream
// round trip with header injection, the done function once before the
// access-log record is handed on, Conn on connection open/close). It lets
// telemetry be tested through real sockets independently of the real data
// plane, which is developed in parallel.
package hookproxy

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/observe"
)

// Decision is a stand-in policy outcome: Status > 0 answers the request
// without reaching the upstream (a denial).
type Decision struct {
	Policy, Outcome string
	Status          int
}

// Proxy forwards every request to Upstream as API/Route/Service.
type Proxy struct {
	Hooks    observe.Hooks
	Upstream *url.URL
	Listener string
	API      string
	Route    string
	Service  string
	Client   *http.Client
	// Decide, when set, plays a policy chain.
	Decide func(*http.Request) Decision
	// OnRecord receives each finished access-log record.
	OnRecord func(*accesslog.Record)
}

var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// ServeHTTP proxies one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
	var done observe.RequestDone
	if p.Hooks.Request != nil {
		ctx, done = p.Hooks.Request(ctx, observe.RequestInfo{
			Listener: p.Listener, API: p.API, Route: p.Route, Method: r.Method, Header: r.Header.Get,
		})
	}
	rec := &accesslog.Record{
		StartTime: start, Method: r.Method, Path: r.URL.RequestURI(), Protocol: r.Proto,
		APIInstance: p.API, Route: p.Route, UserAgent: r.UserAgent(), Authority: r.Host,
		DownstreamRemoteAddress: r.RemoteAddr,
	}
	var tm observe.Timings
	cw := &countingWriter{ResponseWriter: w}
	func() {
		if p.Decide != nil {
			if d := p.Decide(r); d.Policy != "" {
				rec.Policy, rec.PolicyOutcome = d.Policy, d.Outcome
				if d.Status > 0 {
					rec.ResponseCode = d.Status
					cw.WriteHeader(d.Status)
					return
				}
			}
		}
		u := *p.Upstream
		u.Path = r.URL.Path
		u.RawQuery = r.URL.RawQuery
		out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), r.Body)
		if err != nil {
			rec.ResponseCode = http.StatusBadGateway
			cw.WriteHeader(rec.ResponseCode)
			return
		}
		out.Header = r.Header.Clone()
		for _, h := range hopHeaders {
			out.Header.Del(h)
		}
		out.ContentLength = r.ContentLength
		attemptDone := func(int, error) {}
		if p.Hooks.UpstreamAttempt != nil {
			attemptDone = p.Hooks.UpstreamAttempt(ctx, out.Header.Set, observe.AttemptInfo{
				API: p.API, Route: p.Route, Service: p.Service, Endpoint: p.Upstream.Host,
				Method: r.Method, Path: out.URL.Path,
			})
		}
		tm.Service = p.Service
		rec.UpstreamHost = p.Upstream.Host
		rec.UpstreamCluster = p.Service
		upStart := time.Now()
		resp, err := p.Client.Do(out)
		tm.Upstream = time.Since(upStart)
		rec.UpstreamServiceTime = tm.Upstream
		if err != nil {
			attemptDone(0, err)
			rec.ResponseCode = http.StatusBadGateway
			rec.ResponseFlags = "UF"
			cw.WriteHeader(rec.ResponseCode)
			return
		}
		attemptDone(resp.StatusCode, nil)
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		rec.ResponseCode = resp.StatusCode
		cw.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(cw, resp.Body)
	}()
	rec.BytesSent = cw.n
	if r.ContentLength > 0 {
		rec.BytesReceived = r.ContentLength
	}
	tm.Total = time.Since(start)
	tm.RequestBytes = rec.BytesReceived
	tm.ResponseBytes = rec.BytesSent
	rec.Duration = tm.Total
	if done != nil {
		done(rec, tm)
	}
	if p.OnRecord != nil {
		p.OnRecord(rec)
	}
}

// ConnState reports connections to the Conn hook; install it as
// http.Server.ConnState.
func (p *Proxy) ConnState(_ net.Conn, s http.ConnState) {
	if p.Hooks.Conn == nil {
		return
	}
	switch s {
	case http.StateNew:
		p.Hooks.Conn(p.Listener, 1)
	case http.StateClosed, http.StateHijacked:
		p.Hooks.Conn(p.Listener, -1)
	}
}

// Serve starts the proxy on a loopback port and returns its base URL and a
// function that stops it.
func (p *Proxy) Serve() (string, func(), error) {
	if p.Client == nil {
		p.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: p, ConnState: p.ConnState, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}
