// Package dataplane is flexgw's built-in data plane: a reverse proxy that
// serves an ir.Snapshot directly (listeners, routing, upstream pools,
// health) when no Envoy runs. The agent calls New once, Apply for every
// accepted snapshot, Endpoints for the admin API and Shutdown on exit.
//
// # Request path
//
// Every listener is served by the HTTP/1.1 server of internal/h1
// (h1listener.go wires it; it terminates TLS too): the request head is parsed into one string per
// request, the http.Request, URL, header map, body reader and response
// writer are the connection's own and reused for every request, policy
// chains included (a policy keeps nothing of a request past its return),
// and the response is framed straight into the connection's buffer. The
// request's context is the connection's connCtx, which points at the
// request's state, so a policy chain needs no wrapped request. Connections
// that open with the HTTP/2 preface (h2c, prior knowledge) or negotiate h2
// by ALPN are handed to the HTTP/2 server of internal/h2 (a reading
// goroutine per connection, a handler goroutine per stream, responses
// gathered in one connection buffer and written together). Every HTTP/2
// connection passes the reset counter of internal/h2guard. All feed the
// same http.Handler, so routing, policies and the upstream side are
// shared. x/net's HTTP/2 server, used before, cost a channel round trip
// per frame between handler and serving goroutine and a flush per frame. net/http's own
// HTTP/1 server spent a goroutine, a read syscall, a context and about
// twenty allocations per request on top of the proxy's work; see
// bench/proxy for the numbers.
//
// Routing picks the listener's API by base path (longest first, on a
// path-segment boundary), then the first route whose rules match
// (ir.Rule.Matches, path relative to the base path), then a destination by
// weight. Policies run after routing, so a path no API serves is a plain
// 404 (NR) and costs no authentication or rate limit. The upstream side is
// this package's own HTTP/1.1 client (client.go, request.go; the response
// head and chunked parsers are internal/h1's): pooled
// keep-alive connections per endpoint (checked for an upstream close when
// idle over a second), the request head written straight from the inbound
// header map, the response head parsed into one string, bodies streamed
// through the connection's buffer and flushed whenever the upstream has
// nothing more buffered (so SSE and other streams are not held back).
// Services that set http2 use net/http's transport instead (h2
// multiplexing).
//
// A client that disconnects while its request waits for the upstream is
// noticed (DC) through the request context on net/http listeners, and on
// the h1 server by a watcher (h1.Conn.Watch) started only once the upstream has taken more
// than a second, so fast requests never pay for it.
//
// # Decisions
//
//   - Host: the upstream receives the upstream's own host (and port when it
//     is not the scheme default), like nginx's default and what virtual
//     hosts and SaaS upstreams need; the client's Host travels in
//     X-Forwarded-Host. X-Forwarded-For is appended to, X-Forwarded-Proto
//     is the listener's scheme, x-request-id is kept when the client sent
//     one (up to 128 bytes) or generated (UUIDv4).
//   - No healthy endpoint: the request is spread over all endpoints anyway
//     (Envoy's panic mode), because a one-endpoint service would otherwise
//     refuse everything for a whole ejection period after one bad spell.
//     503 UH is only for a service without endpoints.
//   - Passive health (outlier detection) runs only when the service
//     configures it, as in Envoy. Connect failures, timeouts and upstream
//     502/503/504 count as failures; ConsecutiveFailures in a row eject the
//     endpoint for BaseEjectionTime, at most MaxEjectionPercent of the
//     endpoints (always at least one).
//   - Active health checks start every endpoint healthy, so a fresh
//     gateway serves at once.
//   - The route timeout bounds the exchange from the start of the request
//     to the end of the response, like Envoy's route timeout: before the
//     response head it is a 504 UT; after it the response is cut (UT) and
//     the client sees a broken response. WebSocket tunnels are bounded only
//     during the handshake.
//   - Retries (route retry attempts) happen only for idempotent requests
//     without a body, when the connection to an endpoint failed; another
//     endpoint is preferred. A pooled connection the upstream had closed is
//     replaced transparently once.
//   - Errors the gateway produces are JSON {"error","status","request_id"}
//     with Envoy response flags in the access log: NR 404, UF 502 (UF,URX
//     when retries ran out), UH 503, UO 503 (circuit breaker), UT 504, UC
//     502 (upstream closed before answering), UR (upstream reset mid-body),
//     DC (client left; response_code 0 when nothing was sent; 400 when its
//     body was malformed). Request heads over MaxHeaderBytes get 431,
//     malformed requests 400, an unsupported Transfer-Encoding 501, an
//     unknown Expect 417, a head not complete within ReadHeaderTimeout
//     408; these are plain text and not logged (no request exists yet).
//   - When an API's routes all miss, a listener API with a shorter base
//     path may still serve the request (one flattened route table, as on
//     Envoy); the config validator currently rejects such overlaps anyway.
//
// # Reloads
//
// Apply builds the new routing table and the services it needs (reusing
// every service whose configuration is unchanged, with its pools and
// health), binds new listeners, then swaps the table with one atomic
// store. Requests hold the table they started with, so none fails because
// of a reload. Removed listeners drain in the background; a listener whose
// protocol changes is rebound (a short gap on that address). TLS
// certificates are swapped without rebinding.
package dataplane
