// Package h1 is the built-in data plane's HTTP/1.1 wire code: a server
// that parses requests strictly by RFC 9112 and frames responses straight
// into the connection's buffer (Server, configured by Options), and the
// parsers the upstream client uses (ReadResponseHead, ChunkedReader).
//
// # Strictness
//
// Where a lenient parser would frame a message differently from a strict
// hop in front of or behind it, the message is refused: chunk-size lines
// that are not 1*HEXDIG [ext] CRLF, chunk data not followed by CRLF, a
// trailer section over the head limits, Transfer-Encoding with
// Content-Length or in an HTTP/1.0 request, repeated or conflicting Content-Length, obs-fold,
// control characters in values, a Host that is no RFC 3986 authority,
// more header fields than Options.MaxHeaders, more empty lines before the
// request line than Options.MaxLeadingEmptyLines. An absolute-form target's
// authority wins over Host. Heads larger than Options.MaxHeaderBytes get
// 431; a head not complete within Options.ReadHeaderTimeout (from accept
// for a connection's first request) 408; a body silent for
// Options.BodyTimeout fails its read.
//
// # Reuse
//
// Each connection owns one http.Request, URL, header map, body reader and
// ResponseWriter, reused from request to request: a handler must not keep
// any of them, nor the request's context, past its return (the data
// plane's policies promise that; see policy.Middleware). Options.ConnContext
// gives every request on a connection the same context, which the data
// plane uses to reach its per-request state without wrapping the request.
//
// # Trailers
//
// A chunked body's trailer section is parsed as strictly as a head and
// bounded like one (ChunkedReader.SetTrailerLimits: the server's
// MaxHeaders and MaxHeaderBytes for requests); fields a recipient must
// not take from trailers (RFC 9110 6.5.1: framing, routing, request
// modifiers, authentication, response control, Content-*; TrailerAllowed)
// are dropped. A request's trailers land in its Trailer map when its body
// reaches io.EOF; a response's trailers are the values of the names its
// Trailer header declared and every http.TrailerPrefix key, written after
// a chunked body (the net/http convention, which HTTP/2 shares).
//
// FuzzReadRequest, FuzzResponseHead and FuzzChunkedTrailers run in `make
// test`.
package h1
