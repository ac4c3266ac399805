// Package h1 is the built-in data plane's HTTP/1.1 wire code: a server
// that parses requests strictly by RFC 9112 and frames responses straight
// into the connection's buffer (Server, configured by Options), and the
// parsers the upstream client uses (ReadResponseHead, ChunkedReader).
//
// # Strictness
//
// Where a lenient parser would frame a message differently from a strict
// hop in front of or behind it, the message is refused: chunk-size lines
// that are not 1*HEXDIG [ext] CRLF, chunk data not followed by CRLF, more
// than 100 trailer fields, Transfer-Encoding with Content-Length or in an
// HTTP/1.0 request, repeated or conflicting Content-Length, obs-fold,
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
// FuzzReadRequest and FuzzResponseHead run in `make test`.
package h1
