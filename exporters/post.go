package exporters

import (
	"bytes"
	"context"
	"errors"
	"net/http"
)

// Poster sends request bodies to one URL: compressed when Gzip is set,
// with the same headers on every request. It is the send loop of the
// exporters whose batch is a series of independent bodies (the generic
// HTTP output, Sumo Logic), and the single request of the others.
type Poster struct {
	Client *http.Client
	URL    string
	// Header is set on every request (shared, never modified per
	// request); Post adds Content-Encoding: gzip when Gzip is set.
	Header http.Header
	Gzip   bool
}

// errStop ends a split early; it never leaves this file.
var errStop = errors.New("stop")

// SendAll posts every body split emits and reports each one's outcome
// (events[lo:hi] confirmed or failed). After a body the aggregator could
// not be reached for (see Continue) it stops: the events of the bodies
// not attempted are reported by no Outcome and are sent again later.
func (p *Poster) SendAll(ctx context.Context, split func(emit func(body []byte, lo, hi int) error) error, report func(Outcome)) {
	zbuf := GetBuffer()
	defer PutBuffer(zbuf)
	_ = split(func(body []byte, lo, hi int) error {
		_, err := p.Post(ctx, zbuf, body)
		report(Outcome{Lo: lo, Hi: hi, Err: err})
		if !Continue(err) {
			return errStop
		}
		return nil
	})
}

// Post sends one body, compressing it into zbuf first when Gzip is set
// (zbuf may be nil otherwise), and returns the answer's body as Do does.
func (p *Poster) Post(ctx context.Context, zbuf *bytes.Buffer, body []byte) ([]byte, error) {
	if p.Gzip {
		Gzip(zbuf, body)
		body = zbuf.Bytes()
	}
	req, err := NewRequest(ctx, http.MethodPost, p.URL, body)
	if err != nil {
		return nil, err
	}
	for k, v := range p.Header {
		req.Header[k] = v
	}
	if p.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	return Do(p.Client, req, 64<<10)
}
