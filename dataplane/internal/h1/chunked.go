package h1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
)

// ChunkedReader decodes a chunked body (RFC 9112 7.1, strictly) from a
// connection's buffered reader: request bodies and upstream responses.
// The trailer section after the last chunk is parsed and kept (minus
// the fields TrailerAllowed refuses) for Trailers.
type ChunkedReader struct {
	br  *bufio.Reader
	n   int64 // bytes left in the current chunk
	err error
	eof bool
	// maxTrailers and maxTrailerBytes bound the trailer section.
	maxTrailers, maxTrailerBytes int
	trailer                      trailerSection
}

// Reset starts decoding a new body from br, with the default trailer
// limits.
func (r *ChunkedReader) Reset(br *bufio.Reader) {
	*r = ChunkedReader{br: br, maxTrailers: DefaultMaxTrailers, maxTrailerBytes: DefaultMaxTrailerBytes}
}

// SetTrailerLimits bounds the trailer section to n fields and size bytes
// (values <= 0 keep the defaults); a section over either fails the body.
func (r *ChunkedReader) SetTrailerLimits(n, size int) {
	if n > 0 {
		r.maxTrailers = n
	}
	if size > 0 {
		r.maxTrailerBytes = size
	}
}

// Trailers returns the relayable trailer fields once the body was read
// to io.EOF (nil when there were none). The map is the caller's to keep.
func (r *ChunkedReader) Trailers() http.Header {
	if !r.eof {
		return nil
	}
	return r.trailer.h
}

// Peek returns up to max bytes of chunk data already buffered (blocking
// for more only when none is), for copying without an extra buffer.
func (r *ChunkedReader) Peek(max int) ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.eof {
		return nil, io.EOF
	}
	if r.n == 0 {
		if err := r.nextChunk(); err != nil {
			r.err = err
			return nil, err
		}
		if r.eof {
			return nil, io.EOF
		}
	}
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			r.err = err
			return nil, err
		}
	}
	n := min(int64(r.br.Buffered()), r.n, int64(max))
	b, _ := r.br.Peek(int(n))
	return b, nil
}

// Advance consumes n bytes returned by Peek.
func (r *ChunkedReader) Advance(n int) error {
	_, _ = r.br.Discard(n)
	r.n -= int64(n)
	if r.n == 0 {
		if err := r.crlf(); err != nil {
			r.err = err
			return err
		}
	}
	return nil
}

// crlf reads the CRLF that must follow chunk data (RFC 9112 7.1): any
// other byte there means the two ends frame the body differently.
func (r *ChunkedReader) crlf() error {
	b, err := r.br.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if b[0] != '\r' || b[1] != '\n' {
		return errChunkCRLF
	}
	_, _ = r.br.Discard(2)
	return nil
}

var (
	errChunkCRLF     = errors.New("chunked: missing CRLF after chunk data")
	errChunkSizeLine = errors.New("chunked: malformed chunk size line")
	errChunkTrailers = errors.New("chunked: malformed trailer field")
	errTrailerLimit  = errors.New("chunked: trailer section over its field count or size limit")
)

// nextChunk reads a chunk-size line, RFC 9112 7.1:
// 1*HEXDIG *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ) CRLF.
// Anything else ("0x5", "5xyz", a bare LF) is an error: a lenient reader
// frames the body differently from a strict one in front of or behind it.
func (r *ChunkedReader) nextChunk() error {
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			err = errChunkSizeLine
		}
		return err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return errChunkSizeLine
	}
	line = line[:len(line)-2]
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			goto done
		}
		if i >= 15 {
			return errors.New("chunked: chunk size too large")
		}
		n = n<<4 | int64(d)
	}
done:
	if i == 0 {
		return errChunkSizeLine
	}
	if rest := line[i:]; len(rest) > 0 {
		// Only an extension may follow: optional whitespace, then ';'.
		j := 0
		for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t') {
			j++
		}
		if j == len(rest) || rest[j] != ';' {
			return errChunkSizeLine
		}
		for _, c := range rest[j:] {
			if c < ' ' && c != '\t' || c == 0x7f {
				return errChunkSizeLine
			}
		}
	}
	if n == 0 {
		// Last chunk: the trailer section, up to the empty line.
		for {
			t, err := r.br.ReadSlice('\n')
			if err != nil {
				if errors.Is(err, bufio.ErrBufferFull) {
					err = errTrailerLimit
				} else if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			if len(t) < 2 || t[len(t)-2] != '\r' {
				return errChunkTrailers
			}
			if len(t) == 2 {
				break
			}
			if err := r.trailer.add(t, r.maxTrailers, r.maxTrailerBytes); err != nil {
				return err
			}
		}
		r.eof = true
		return nil
	}
	r.n = n
	return nil
}

// Buffered is how many bytes the underlying reader holds.
func (r *ChunkedReader) Buffered() int { return r.br.Buffered() }
