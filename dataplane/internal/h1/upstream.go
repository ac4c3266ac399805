package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// This file parses upstream response heads for the data plane's HTTP/1.1
// client.

// MaxResponseHead bounds upstream response headers.
const MaxResponseHead = 64 << 10

// ErrResponseHead wraps every malformed-response error.
var ErrResponseHead = errors.New("malformed upstream response")

// Response is a parsed upstream response head.
type Response struct {
	Status int
	// ContentLength is -1 when absent.
	ContentLength int64
	Chunked       bool
	Close         bool // upstream said Connection: close (or HTTP/1.0)
	Upgrade       bool // 101 with Upgrade
	// Header holds the end-to-end headers to relay.
	Header http.Header
}

// HopHeaders are connection-level headers never relayed (RFC 9110 7.6.1).
var HopHeaders = map[string]bool{
	"Connection":          true,
	"Keep-Alive":          true,
	"Proxy-Connection":    true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// commonHeaders interns canonical names of frequent response headers so
// parsing them does not allocate.
var commonHeaders = func() map[string]string {
	m := map[string]string{}
	for _, h := range []string{
		"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Cache-Control",
		"Connection", "Content-Encoding", "Content-Language", "Content-Length",
		"Content-Type", "Date", "Etag", "Expires", "Keep-Alive", "Last-Modified",
		"Location", "Server", "Set-Cookie", "Transfer-Encoding", "Vary",
		"Via", "X-Request-Id", "Upgrade", "Sec-Websocket-Accept",
		"Sec-Websocket-Protocol", "Sec-Websocket-Extensions", "Strict-Transport-Security",
		"X-Content-Type-Options", "X-Frame-Options", "Www-Authenticate", "Retry-After",
		"Trailer", "Proxy-Connection", "Te",
	} {
		m[h] = h
		m[lower(h)] = h
	}
	return m
}()

func lower(s string) string { return string(bytes.ToLower([]byte(s))) }

// ReadResponseHead reads the status line and headers from br into res and
// h (cleared by the caller); 1xx informational responses other than 101
// are skipped. Header strings are substrings of one allocation; *scratch
// is reused for the raw lines.
func ReadResponseHead(br *bufio.Reader, scratch *[]byte, res *Response, h http.Header) error {
	for {
		if err := readHead(br, scratch, res, h); err != nil {
			return err
		}
		if res.Status >= 200 || res.Status == http.StatusSwitchingProtocols {
			return nil
		}
		clear(h)
	}
}

func readHead(br *bufio.Reader, scratch *[]byte, res *Response, h http.Header) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return fmt.Errorf("%w: status line %q", ErrResponseHead, truncate(line))
	}
	minor := line[7]
	st := line[9:12]
	if st[0] < '1' || st[0] > '5' || st[1] < '0' || st[1] > '9' || st[2] < '0' || st[2] > '9' {
		return fmt.Errorf("%w: status %q", ErrResponseHead, truncate(line))
	}
	*res = Response{
		Status:        int(st[0]-'0')*100 + int(st[1]-'0')*10 + int(st[2]-'0'),
		ContentLength: -1,
		Close:         minor == '0',
		Header:        h,
	}
	// Collect the header block, then convert it to one string so every
	// key and value is a substring of a single allocation.
	head := (*scratch)[:0]
	defer func() { *scratch = head }()
	nlines := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return fmt.Errorf("%w: header line too long", ErrResponseHead)
			}
			return err
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			break
		}
		head = append(head, line...)
		nlines++
		if len(head) > MaxResponseHead {
			return fmt.Errorf("%w: headers over %d bytes", ErrResponseHead, MaxResponseHead)
		}
	}
	if nlines == 0 {
		return nil
	}
	block := string(head)
	vals := make([]string, 0, nlines)
	var connHdr string
	for len(block) > 0 {
		line := block
		if i := strings.IndexByte(block, '\n'); i >= 0 {
			line, block = block[:i], block[i+1:]
		} else {
			block = ""
		}
		line = trimCR(line)
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return fmt.Errorf("%w: header line %q", ErrResponseHead, line)
		}
		key := CanonicalKey(line[:colon])
		v := TrimSpace(line[colon+1:])
		switch key {
		case "Content-Length":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("%w: Content-Length %q", ErrResponseHead, v)
			}
			res.ContentLength = n
		case "Transfer-Encoding":
			if asciiContainsFold(v, "chunked") {
				res.Chunked = true
			}
			continue
		case "Connection":
			connHdr = v
			if asciiContainsFold(v, "close") {
				res.Close = true
			}
			continue
		case "Upgrade":
			if res.Status == http.StatusSwitchingProtocols {
				vals = append(vals, v)
				h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
				res.Upgrade = true
			}
			continue
		}
		if HopHeaders[key] {
			continue
		}
		if old, ok := h[key]; ok {
			h[key] = append(old, v)
			continue
		}
		vals = append(vals, v)
		h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if connHdr != "" {
		RemoveConnectionHeaders(h, connHdr)
	}
	if res.Chunked {
		// Chunked wins over a Content-Length (RFC 9112 6.3); relaying
		// both would let the client frame the body differently.
		res.ContentLength = -1
		delete(h, "Content-Length")
	}
	return nil
}
