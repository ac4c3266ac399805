package dataplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/dataplane/internal/h2guard"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/observe"
	"github.com/flexgw/flexgw/policy"
)

// Options configure a DataPlane. Zero values take the defaults noted.
type Options struct {
	// GatewayID fills access-log records' gateway_id.
	GatewayID string
	// Logger receives runtime logs; nil uses slog.Default.
	Logger *slog.Logger
	// AccessLog receives one record per request; nil logs nothing.
	AccessLog accesslog.Sink
	// Hooks let telemetry observe requests, attempts, connections, health.
	Hooks observe.Hooks
	// Shared is the replica-shared store for clusterizable policies.
	Shared policy.SharedStore
	// ReadHeaderTimeout closes connections whose request head is not
	// complete in time (slowloris). Default 10s.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes caps request heads; larger ones get 431. Default 64 KiB.
	MaxHeaderBytes int
	// IdleTimeout closes idle keep-alive client connections. Default 120s.
	IdleTimeout time.Duration
	// MaxHeaders caps the header fields of a request head (400 beyond,
	// like Envoy's max_headers_count). Default 100.
	MaxHeaders int
	// BodyTimeout is how long a request body may stay silent between two
	// reads before the request fails with 408 (nginx client_body_timeout).
	// Default 60s.
	BodyTimeout time.Duration
	// H2MaxResets and H2ResetWindow close an HTTP/2 connection (GOAWAY
	// ENHANCE_YOUR_CALM) on which more than H2MaxResets streams were
	// reset within H2ResetWindow, by the client or by the server for a
	// protocol error the client caused, when they are over half the
	// streams it opened (rapid reset, MadeYouReset; see
	// internal/h2guard). Defaults 200 and 10s. For H2ResetWindow after
	// a connection tripped, new HTTP/2 connections from the same client
	// address are closed before a stream is served, so reconnecting does
	// not buy a fresh budget.
	H2MaxResets   int
	H2ResetWindow time.Duration
	// EscapedSlashes is what %2F and %5C in a request path do (Envoy's
	// path_with_escaped_slashes_action); the zero value rejects them (400).
	EscapedSlashes ir.EscapedSlashes
}

// DataPlane serves ir.Snapshots: one HTTP server per listener address,
// one routing table swapped atomically per snapshot, and upstream
// services whose pools and health survive reloads while unchanged.
type DataPlane struct {
	opts  Options
	log   *slog.Logger
	hooks observe.Hooks
	sink  accesslog.Sink

	table atomic.Pointer[table]

	mu        sync.Mutex // serialises Apply and Shutdown
	listeners map[string]*listener
	services  map[string]*service
	closed    bool

	// hijacked tracks upgraded (WebSocket) connections, which
	// http.Server.Shutdown does not see, so Shutdown can end them.
	hijackMu sync.Mutex
	hijacked map[net.Conn]struct{}
	tunnels  sync.WaitGroup

	// h2Penalty keeps the addresses of clients whose HTTP/2 connections
	// tripped the reset guard.
	h2Penalty *h2guard.Penalty
}

// listener is one bound address and its server.
type listener struct {
	addr    string
	name    string
	proto   ir.Protocol
	ln      net.Listener
	srv     server
	tlsConf atomic.Pointer[tls.Config]
	done    chan struct{}
}

// server is what serves one listener (an h1Listener).
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// New returns an idle data plane; Apply starts serving.
func New(opts Options) *DataPlane {
	if opts.Logger == nil {
		opts.Logger = slog.Default().With("component", "dataplane")
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = 10 * time.Second
	}
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = 64 << 10
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 120 * time.Second
	}
	if opts.MaxHeaders <= 0 {
		opts.MaxHeaders = 100
	}
	if opts.H2MaxResets <= 0 {
		opts.H2MaxResets = 200
	}
	if opts.H2ResetWindow <= 0 {
		opts.H2ResetWindow = 10 * time.Second
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = 60 * time.Second
	}
	dp := &DataPlane{
		opts:      opts,
		log:       opts.Logger,
		hooks:     opts.Hooks,
		sink:      opts.AccessLog,
		listeners: map[string]*listener{},
		services:  map[string]*service{},
		hijacked:  map[net.Conn]struct{}{},
		h2Penalty: h2guard.NewPenalty(opts.H2ResetWindow),
	}
	dp.table.Store(&table{listeners: map[string]*lnRoutes{}})
	return dp
}

// ErrClosed is returned by Apply after Shutdown.
var ErrClosed = errors.New("dataplane: shut down")

// Apply serves s: it binds listeners that are new, swaps the routing table
// atomically, and closes listeners s no longer has. Requests already
// running finish on the table they started with. On error nothing
// changes and the previous snapshot keeps serving.
func (dp *DataPlane) Apply(s *ir.Snapshot) error {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	if dp.closed {
		return ErrClosed
	}

	// Services: keep unchanged ones (pools, health), build the rest.
	svcs := make(map[string]*service, len(s.Services))
	var created []*service
	fail := func(err error) error {
		for _, c := range created {
			c.close()
		}
		return err
	}
	for _, is := range s.Services {
		key := is.Key()
		if old := dp.services[key]; old != nil && old.fingerprint == serviceFingerprint(is) {
			// Same behaviour. old.cfg stays as it was (requests read it
			// concurrently); policies come from the new snapshot's service.
			svcs[key] = old
			continue
		}
		ns, err := newService(dp, is)
		if err != nil {
			return fail(err)
		}
		svcs[key] = ns
		created = append(created, ns)
	}

	t, err := dp.buildTable(s, svcs)
	if err != nil {
		return fail(err)
	}

	// Listeners: prepare TLS, then bind what is new.
	want := make(map[string]*ir.Listener, len(s.Listeners))
	tlsConfs := make(map[string]*tls.Config)
	for _, l := range s.Listeners {
		addr := l.Address()
		if _, dup := want[addr]; dup {
			return fail(fmt.Errorf("listener %s: address %s appears twice in the snapshot", l.Name, addr))
		}
		want[addr] = l
		if l.Protocol == ir.HTTPS {
			c, err := serverTLS(l.TLS)
			if err != nil {
				return fail(fmt.Errorf("listener %s (%s): tls: %w", l.Name, addr, err))
			}
			tlsConfs[addr] = c
		}
	}
	// A listener whose protocol changed is closed first, then bound anew.
	for addr, old := range dp.listeners {
		if l, ok := want[addr]; ok && l.Protocol != old.proto {
			dp.closeListener(old, true)
			delete(dp.listeners, addr)
		}
	}
	var bound []*listener
	for _, l := range s.Listeners {
		addr := l.Address()
		if _, ok := dp.listeners[addr]; ok {
			continue
		}
		nl, err := dp.bind(l, tlsConfs[addr])
		if err != nil {
			for _, b := range bound {
				b.ln.Close()
				b.srv.Close()
			}
			return fail(err)
		}
		bound = append(bound, nl)
	}

	// Commit: from here nothing fails.
	for addr, c := range tlsConfs {
		if l := dp.listeners[addr]; l != nil {
			l.tlsConf.Store(c)
		}
	}
	dp.table.Store(t)
	for _, nl := range bound {
		dp.listeners[nl.addr] = nl
		go dp.serve(nl)
	}
	for addr, old := range dp.listeners {
		if _, ok := want[addr]; !ok {
			delete(dp.listeners, addr)
			dp.closeListener(old, false)
		}
	}
	for key, old := range dp.services {
		if svcs[key] != old {
			old.close()
		}
	}
	dp.services = svcs
	for _, c := range created {
		c.startHealthChecks()
		c.startIdleSweep()
	}
	if dp.hooks.EndpointHealth != nil {
		for _, is := range s.Services {
			for _, e := range svcs[is.Key()].endpoints {
				dp.hooks.EndpointHealth(is.Key(), e.addr, e.available())
			}
		}
	}
	dp.log.Info("snapshot applied", "version", s.Version, "listeners", len(s.Listeners),
		"services", len(s.Services), "new_listeners", len(bound))
	return nil
}

// bind opens l's socket; the error names the address.
func (dp *DataPlane) bind(l *ir.Listener, tc *tls.Config) (*listener, error) {
	addr := l.Address()
	// No TCP keep-alive probes on client connections (Envoy and nginx set
	// none by default either): IdleTimeout already closes idle ones, and
	// Go's default would cost four setsockopt calls per accepted
	// connection.
	// Connections are accepted once their first bytes are in (deferAccept).
	lc := net.ListenConfig{KeepAlive: -1, Control: deferAccept}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listener %s: cannot listen on %s: %w", l.Name, addr, err)
	}
	nl := &listener{addr: addr, name: l.Name, proto: l.Protocol, ln: ln, done: make(chan struct{})}
	h := &lnHandler{dp: dp, addr: addr, name: l.Name, scheme: "http"}
	if l.Protocol != ir.HTTPS {
		// Plain HTTP: HTTP/1.x on the h1 server, h2c (prior knowledge)
		// handed to the h2 server.
		nl.srv = newH1Listener(dp, h, nil)
		return nl, nil
	}
	// TLS: the h1 server terminates it and serves HTTP/1.1 itself;
	// connections that negotiate h2 go to the h2 server.
	h.scheme = "https"
	nl.tlsConf.Store(tc)
	nl.srv = newH1Listener(dp, h, &tls.Config{
		// The per-connection config comes from the latest snapshot, so
		// a certificate change needs no rebind.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return nl.tlsConf.Load(), nil },
	})
	return nl, nil
}

// h2Guard wraps an HTTP/2 connection in the reset counter.
func (dp *DataPlane) h2Guard(c net.Conn, listener string) net.Conn {
	remote := c.RemoteAddr().String()
	var client netip.Addr
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		client = ta.AddrPort().Addr().Unmap()
	}
	return h2guard.New(c, h2guard.Options{
		MaxResets: dp.opts.H2MaxResets,
		Window:    dp.opts.H2ResetWindow,
		Penalty:   dp.h2Penalty,
		Client:    client,
		OnTrip: func(resets, streams int) {
			dp.log.Warn("HTTP/2 connection closed: too many stream resets (rapid reset)",
				"listener", listener, "remote", remote, "resets", resets, "streams", streams)
		},
	})
}

func (dp *DataPlane) serve(l *listener) {
	defer close(l.done)
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		dp.log.Error("listener stopped", "listener", l.name, "address", l.addr, "error", err)
	}
}

// closeListener stops l. Removed listeners drain in the background (their
// in-flight requests finish); wait is for a rebind on the same address,
// which needs the socket closed now.
func (dp *DataPlane) closeListener(l *listener, wait bool) {
	drain := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := l.srv.Shutdown(ctx); err != nil {
			l.srv.Close()
		}
	}
	if wait {
		l.ln.Close()
		go drain()
		return
	}
	go drain()
}

func (dp *DataPlane) healthChanged(service, endpoint string, healthy bool) {
	if dp.hooks.EndpointHealth != nil {
		dp.hooks.EndpointHealth(service, endpoint, healthy)
	}
}

// Shutdown stops accepting, lets in-flight requests finish until ctx ends
// (then closes what is left), ends WebSocket tunnels and releases
// upstream pools. The data plane cannot be used afterwards.
func (dp *DataPlane) Shutdown(ctx context.Context) error {
	dp.mu.Lock()
	if dp.closed {
		dp.mu.Unlock()
		return nil
	}
	dp.closed = true
	lns := make([]*listener, 0, len(dp.listeners))
	for _, l := range dp.listeners {
		lns = append(lns, l)
	}
	dp.listeners = map[string]*listener{}
	svcs := dp.services
	dp.mu.Unlock()

	var wg sync.WaitGroup
	errs := make([]error, len(lns))
	for i, l := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.srv.Shutdown(ctx); err != nil {
				l.srv.Close()
				errs[i] = fmt.Errorf("listener %s: drain: %w", l.addr, err)
			}
			<-l.done
		}()
	}
	wg.Wait()

	dp.hijackMu.Lock()
	for c := range dp.hijacked {
		c.Close()
	}
	dp.hijackMu.Unlock()
	dp.tunnels.Wait()

	for _, s := range svcs {
		s.close()
	}
	return errors.Join(errs...)
}

// Endpoints reports every endpoint of the current snapshot, sorted.
func (dp *DataPlane) Endpoints() []observe.EndpointStatus {
	dp.mu.Lock()
	svcs := make([]*service, 0, len(dp.services))
	for _, s := range dp.services {
		svcs = append(svcs, s)
	}
	dp.mu.Unlock()
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].key < svcs[j].key })
	var out []observe.EndpointStatus
	for _, s := range svcs {
		for _, e := range s.endpoints {
			out = append(out, observe.EndpointStatus{
				Service:       s.key,
				Endpoint:      e.addr,
				Healthy:       e.available(),
				ActiveCheck:   s.cfg.HealthCheck != nil,
				ActiveHealthy: e.activeHealthy.Load(),
				Ejected:       e.ejected.Load(),
				InFlight:      e.inflight.Load(),
			})
		}
	}
	return out
}

// Addr returns the bound address of the listener configured as addr
// (useful when the config asked for port 0), or "" when none.
func (dp *DataPlane) Addr(addr string) string {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	if l := dp.listeners[addr]; l != nil {
		return l.ln.Addr().String()
	}
	return ""
}

// serverTLS builds a listener's TLS config; h2 and http/1.1 are offered
// by ALPN unless the config lists protocols.
func serverTLS(t *ir.ServerTLS) (*tls.Config, error) {
	if t == nil || t.CertPEM == "" {
		return nil, errors.New("https listener without a certificate (set the tls policy)")
	}
	cert, err := tls.X509KeyPair([]byte(t.CertPEM), []byte(t.KeyPEM))
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	// crypto/tls serves the first certificate whose names cover the
	// client's SNI, else the first: the order ServerTLS promises.
	for i, ck := range t.SNICerts {
		more, err := tls.X509KeyPair([]byte(ck.CertPEM), []byte(ck.KeyPEM))
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		c.Certificates = append(c.Certificates, more)
	}
	if len(t.ALPN) > 0 {
		c.NextProtos = t.ALPN
	}
	if c.MinVersion, err = tlsVersion(t.MinVersion); err != nil {
		return nil, fmt.Errorf("minVersion: %w", err)
	}
	if c.MaxVersion, err = tlsVersion(t.MaxVersion); err != nil {
		return nil, fmt.Errorf("maxVersion: %w", err)
	}
	// The one cipher table validation and the Envoy translation use.
	if c.CipherSuites, err = ir.CipherSuiteIDs(t.Ciphers); err != nil {
		return nil, fmt.Errorf("ciphers: %w", err)
	}
	if t.ClientCAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.ClientCAPEM)) {
			return nil, errors.New("clientCA: no certificate found")
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if t.RequireClientCert {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return c, nil
}

// Check reports what Apply would reject in s without binding, dialing or
// starting anything: every https listener's TLS context and every
// service's upstream TLS context. The agent's one compile step runs it, so
// `flexgw validate` refuses exactly what `flexgw run` cannot serve.
func Check(s *ir.Snapshot) error {
	var errs []error
	for _, l := range s.Listeners {
		if l.Protocol == ir.HTTPS {
			if _, err := serverTLS(l.TLS); err != nil {
				errs = append(errs, fmt.Errorf("listener %s (%s): tls: %w", l.Name, l.Address(), err))
			}
		}
	}
	for _, svc := range s.Services {
		if svc.Protocol == ir.HTTPS || svc.TLS != nil && svc.Protocol != ir.HTTP {
			if _, err := upstreamTLS(svc); err != nil {
				errs = append(errs, fmt.Errorf("service %s (%s): tls: %w", svc.Key(), svc.Source, err))
			}
		}
	}
	return errors.Join(errs...)
}
