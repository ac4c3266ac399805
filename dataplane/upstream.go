package dataplane

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// Defaults for services that leave a setting out of their config.
const (
	defaultConnectTimeout = 5 * time.Second
	// maxIdlePerEndpoint bounds the keep-alive pool of one endpoint.
	maxIdlePerEndpoint = 256
	// idleConnTimeout drops pooled connections idle this long, below the
	// usual upstream keep-alive timeouts (nginx 75s, Go 2-3 min) so we
	// rarely pick a connection the upstream is about to close.
	idleConnTimeout = 30 * time.Second
	// probeAfterIdle: a connection idle longer than this is checked for a
	// close by the upstream (many servers drop idle keep-alive
	// connections after a few seconds) before a request is sent on it.
	// Busy connections skip the check.
	probeAfterIdle = time.Second
)

// service is the live state of one ir.Service: endpoints with their
// connection pools and health. It survives reloads while the service's
// configuration is unchanged, so pools and health are not reset.
type service struct {
	key         string
	fingerprint string
	cfg         *ir.Service
	endpoints   []*endpoint
	lb          ir.LBPolicy
	rr          atomic.Uint32
	tls         *tls.Config // upstream TLS for https services, nil for http
	// h2 is the transport for services that speak HTTP/2 upstream.
	h2 *http.Transport
	// mirrorTr sends the mirror copies of routes mirroring to the
	// service (mirror.go), made on first use.
	mirrorOnce sync.Once
	mirrorTr   *http.Transport
	dp         *DataPlane

	// passive is set when the service configures outlier detection
	// (passive health); Envoy too leaves it off unless asked.
	passive bool
	outlier ir.OutlierDetection
	ejected atomic.Int32

	// maxRequests is the circuit breaker's cap on requests in flight to
	// the whole service (0 = none); active counts them.
	maxRequests int64
	active      atomic.Int64 // endpoints currently ejected by passive health

	stopOnce sync.Once
	stop     chan struct{}
	closed   atomic.Bool
}

// endpoint is one upstream address of a service.
type endpoint struct {
	svc  *service
	addr string
	host string // Host header sent upstream

	inflight atomic.Int64

	mu   sync.Mutex
	idle []*upConn

	// activeHealthy is the active health check's verdict (true without one).
	activeHealthy atomic.Bool
	// ejected is set by passive health until the ejection timer ends it.
	ejected     atomic.Bool
	consecFails atomic.Int32
}

// serviceFingerprint is the part of a service's config that, when
// unchanged, lets a reload keep its pools and health state.
func serviceFingerprint(s *ir.Service) string {
	c := *s
	c.Policies = nil
	c.Source = ir.Source{}
	b, _ := json.Marshal(&c)
	// Secrets are omitted from JSON; include them so a new cert rebuilds.
	if s.TLS != nil {
		b = append(b, s.TLS.CAPEM+s.TLS.CertPEM+s.TLS.KeyPEM...)
	}
	return string(b)
}

// idleTimeout is how long a pooled connection may stay idle: the
// Configuration's spec.timeouts.upstreamConnectionIdleSeconds, else
// idleConnTimeout.
func (s *service) idleTimeout() time.Duration {
	if s.cfg.IdleTimeout > 0 {
		return s.cfg.IdleTimeout
	}
	return idleConnTimeout
}

func newService(dp *DataPlane, s *ir.Service) (*service, error) {
	svc := &service{
		key:         s.Key(),
		fingerprint: serviceFingerprint(s),
		cfg:         s,
		lb:          s.LB,
		dp:          dp,
		stop:        make(chan struct{}),
	}
	if s.Outlier != nil {
		svc.passive = true
		svc.outlier = *s.Outlier
	}
	if svc.outlier.ConsecutiveFailures <= 0 {
		svc.outlier.ConsecutiveFailures = 5 // Envoy's consecutive_5xx default
	}
	if svc.outlier.BaseEjectionTime <= 0 {
		svc.outlier.BaseEjectionTime = 30 * time.Second
	}
	if svc.outlier.MaxEjectionPercent <= 0 {
		svc.outlier.MaxEjectionPercent = 100
	}
	if cb := s.CircuitBreaker; cb != nil && cb.MaxRequests > 0 {
		svc.maxRequests = int64(cb.MaxRequests)
	}
	if s.Protocol == ir.HTTPS || s.TLS != nil && s.Protocol != ir.HTTP {
		c, err := upstreamTLS(s)
		if err != nil {
			return nil, fmt.Errorf("service %s: tls: %w", s.Key(), err)
		}
		svc.tls = c
	}
	for _, e := range s.Endpoints {
		ep := &endpoint{svc: svc, addr: e.Address(), host: e.Address()}
		if (s.Protocol == ir.HTTPS && e.Port == 443) || (s.Protocol != ir.HTTPS && e.Port == 80) {
			ep.host = e.Host
		}
		ep.activeHealthy.Store(true)
		svc.endpoints = append(svc.endpoints, ep)
	}
	if s.HTTP2 {
		svc.h2 = newH2Transport(svc)
	}
	return svc, nil
}

func upstreamTLS(s *ir.Service) (*tls.Config, error) {
	c := &tls.Config{NextProtos: []string{"http/1.1"}}
	if s.HTTP2 {
		c.NextProtos = []string{"h2"}
	}
	t := s.TLS
	if t == nil {
		return c, nil
	}
	c.ServerName = t.SNI
	c.InsecureSkipVerify = t.SkipValidation
	if t.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.CAPEM)) {
			return nil, errors.New("caPEM: no certificate found")
		}
		c.RootCAs = pool
	}
	if t.CertPEM != "" {
		cert, err := tls.X509KeyPair([]byte(t.CertPEM), []byte(t.KeyPEM))
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	var err error
	if c.MinVersion, err = tlsVersion(t.MinVersion); err != nil {
		return nil, fmt.Errorf("minVersion: %w", err)
	}
	if c.MaxVersion, err = tlsVersion(t.MaxVersion); err != nil {
		return nil, fmt.Errorf("maxVersion: %w", err)
	}
	if len(t.ALPN) > 0 {
		c.NextProtos = t.ALPN
	}
	if c.CipherSuites, err = ir.CipherSuiteIDs(t.Ciphers); err != nil {
		return nil, fmt.Errorf("ciphers: %w", err)
	}
	return c, nil
}

// tlsVersion accepts "1.2", "TLSv1.2", "TLS1.2" and "" (library default).
func tlsVersion(v string) (uint16, error) {
	switch v {
	case "":
		return 0, nil
	case "1.0", "TLSv1.0", "TLSv1_0", "TLS1.0":
		return tls.VersionTLS10, nil
	case "1.1", "TLSv1.1", "TLSv1_1", "TLS1.1":
		return tls.VersionTLS11, nil
	case "1.2", "TLSv1.2", "TLSv1_2", "TLS1.2":
		return tls.VersionTLS12, nil
	case "1.3", "TLSv1.3", "TLSv1_3", "TLS1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q is not a TLS version (want 1.0-1.3)", v)
}

func (s *service) connectTimeout() time.Duration {
	if s.cfg.ConnectTimeout > 0 {
		return s.cfg.ConnectTimeout
	}
	return defaultConnectTimeout
}

// available reports whether the endpoint may take new requests.
func (e *endpoint) available() bool {
	return e.activeHealthy.Load() && !e.ejected.Load()
}

// pick chooses an endpoint for a request, skipping avoid (the endpoint a
// failed attempt used) when another one is available. When no endpoint is
// healthy it falls back to all of them ("panic mode", as Envoy does below
// its healthy-panic threshold): a single-endpoint service would otherwise
// answer 503 for a whole ejection period after one blip. It returns nil
// only for a service without endpoints.
func (s *service) pick(avoid *endpoint) *endpoint {
	eps := s.endpoints
	n := len(eps)
	switch n {
	case 0:
		return nil
	case 1:
		return eps[0]
	}
	if s.lb == ir.LeastRequest {
		return s.pickLeast(avoid)
	}
	start := int(s.rr.Add(1))
	var fallback *endpoint
	for i := 0; i < n; i++ {
		e := eps[(start+i)%n]
		if e == avoid {
			fallback = e
			continue
		}
		if e.available() {
			return e
		}
	}
	if fallback != nil && fallback.available() {
		return fallback
	}
	// Panic mode: nothing healthy, spread over everything.
	e := eps[start%n]
	if e == avoid {
		e = eps[(start+1)%n]
	}
	return e
}

// pickLeast picks the available endpoint with the fewest requests in
// flight; ties go round-robin so equal endpoints share the load.
func (s *service) pickLeast(avoid *endpoint) *endpoint {
	eps := s.endpoints
	n := len(eps)
	start := int(s.rr.Add(1))
	var best *endpoint
	var bestN int64
	for pass := 0; pass < 2 && best == nil; pass++ {
		for i := 0; i < n; i++ {
			e := eps[(start+i)%n]
			if e == avoid && n > 1 {
				continue
			}
			if pass == 0 && !e.available() {
				continue
			}
			if c := e.inflight.Load(); best == nil || c < bestN {
				best, bestN = e, c
			}
		}
	}
	if best == nil {
		best = eps[start%n]
	}
	return best
}

// reportResult feeds passive health: a connect failure, timeout or a
// 502/503/504 counts as a failure, anything else resets the count.
func (e *endpoint) reportResult(failed bool) {
	if !e.svc.passive {
		return
	}
	if !failed {
		if e.consecFails.Load() != 0 {
			e.consecFails.Store(0)
		}
		return
	}
	s := e.svc
	if e.consecFails.Add(1) < int32(s.outlier.ConsecutiveFailures) || e.ejected.Load() {
		return
	}
	// Respect MaxEjectionPercent, but always allow ejecting one endpoint.
	maxEj := len(s.endpoints) * s.outlier.MaxEjectionPercent / 100
	if maxEj < 1 {
		maxEj = 1
	}
	if int(s.ejected.Load()) >= maxEj {
		return
	}
	if !e.ejected.CompareAndSwap(false, true) {
		return
	}
	s.ejected.Add(1)
	e.consecFails.Store(0)
	s.dp.log.Warn("endpoint ejected", "service", s.key, "endpoint", e.addr,
		"for", s.outlier.BaseEjectionTime, "reason", "consecutive failures")
	s.dp.healthChanged(s.key, e.addr, false)
	e.closeIdle()
	time.AfterFunc(s.outlier.BaseEjectionTime, func() {
		if e.ejected.CompareAndSwap(true, false) {
			s.ejected.Add(-1)
			if s.closed.Load() {
				return
			}
			s.dp.log.Info("endpoint returned after ejection", "service", s.key, "endpoint", e.addr)
			if e.activeHealthy.Load() {
				s.dp.healthChanged(s.key, e.addr, true)
			}
		}
	})
}

// close stops health checks and closes pooled connections. Requests still
// running on an old routing table finish; their connections are closed
// when returned.
func (s *service) close() {
	s.stopOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		for _, e := range s.endpoints {
			e.closeIdle()
		}
		if s.h2 != nil {
			s.h2.CloseIdleConnections()
		}
		s.mirrorOnce.Do(func() {}) // no transport is made after close
		if s.mirrorTr != nil {
			s.mirrorTr.CloseIdleConnections()
		}
	})
}

func (e *endpoint) closeIdle() {
	e.mu.Lock()
	idle := e.idle
	e.idle = nil
	e.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
}

// getIdle returns a pooled connection, newest first (warm and least likely
// to have been closed by the upstream), or nil.
func (e *endpoint) getIdle(now time.Time) *upConn {
	e.mu.Lock()
	for n := len(e.idle); n > 0; n = len(e.idle) {
		c := e.idle[n-1]
		e.idle[n-1] = nil
		e.idle = e.idle[:n-1]
		if idle := now.Sub(c.idleSince); idle < e.svc.idleTimeout() {
			e.mu.Unlock()
			if idle > probeAfterIdle && !c.alive() {
				c.conn.Close()
				return nil
			}
			return c
		}
		// The newest is stale, so all older ones are too.
		stale := e.idle
		e.idle = nil
		e.mu.Unlock()
		c.conn.Close()
		for _, s := range stale {
			s.conn.Close()
		}
		return nil
	}
	e.mu.Unlock()
	return nil
}

// startIdleSweep closes pooled connections once they have been idle for
// the configured upstream idle timeout, as Envoy's cluster idle_timeout
// does, so an upstream sees the gateway let go rather than only finding
// out on the next request. Without a configured timeout the pool keeps
// its lazy expiry in getIdle.
func (s *service) startIdleSweep() {
	if s.cfg.IdleTimeout <= 0 {
		return
	}
	every := max(s.cfg.IdleTimeout/2, 10*time.Millisecond)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case now := <-t.C:
				for _, e := range s.endpoints {
					e.closeIdleBefore(now.Add(-s.cfg.IdleTimeout))
				}
			}
		}
	}()
}

// closeIdleBefore closes the pooled connections idle since before cutoff
// (the pool is ordered oldest first).
func (e *endpoint) closeIdleBefore(cutoff time.Time) {
	e.mu.Lock()
	n := 0
	for n < len(e.idle) && e.idle[n].idleSince.Before(cutoff) {
		n++
	}
	stale := append([]*upConn(nil), e.idle[:n]...)
	e.idle = append(e.idle[:0], e.idle[n:]...)
	e.mu.Unlock()
	for _, c := range stale {
		c.conn.Close()
	}
}

// putIdle returns a reusable connection to the pool.
func (e *endpoint) putIdle(c *upConn, now time.Time) {
	c.idleSince = now
	e.mu.Lock()
	if len(e.idle) >= maxIdlePerEndpoint || e.svc.closed.Load() || e.ejected.Load() {
		e.mu.Unlock()
		c.conn.Close()
		return
	}
	e.idle = append(e.idle, c)
	e.mu.Unlock()
}

// dial opens a new connection (TLS when the service needs it).
func (e *endpoint) dial(deadline time.Time) (*upConn, error) {
	s := e.svc
	d := net.Dialer{Timeout: s.connectTimeout(), Deadline: deadline, KeepAlive: 30 * time.Second}
	nc, err := d.Dial("tcp", e.addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if s.tls != nil {
		cfg := s.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			h, _, _ := net.SplitHostPort(e.addr)
			cfg.ServerName = h
		}
		tc := tls.Client(nc, cfg)
		_ = tc.SetDeadline(time.Now().Add(s.connectTimeout()))
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		_ = tc.SetDeadline(time.Time{})
		nc = tc
	}
	return newUpConn(nc), nil
}

// weightedPick chooses a destination index by weight.
func weightedPick(cum []uint32) int {
	if len(cum) == 1 {
		return 0
	}
	total := cum[len(cum)-1]
	if total == 0 {
		return rand.IntN(len(cum))
	}
	x := rand.Uint32N(total)
	for i, c := range cum {
		if x < c {
			return i
		}
	}
	return len(cum) - 1
}
