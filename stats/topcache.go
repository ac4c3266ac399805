package stats

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// A /api/v1/top snapshot is computed at most once per wall-clock second
// for each distinct query and served from memory for the rest of that
// second. The agent's windows move a second at a time, so a dashboard
// refreshing ten times a second gets the same bytes nine times out of ten;
// with the ETag below it then receives a 304 and skips decoding and
// repainting, and any number of dashboards cost one computation per query
// per second.
const (
	// maxCachedQueries bounds the distinct queries kept for one second
	// (each dashboard asks for its own routes window).
	maxCachedQueries = 64
	// maxCachedBytes bounds the memory the cache holds for one second;
	// beyond it snapshots are computed per request.
	maxCachedBytes = 8 << 20
)

// topCache holds the encoded snapshots of the current second by query.
type topCache struct {
	mu      sync.Mutex
	sec     int64
	entries map[string]*topBody
	bytes   int
}

// topBody is one encoded snapshot and its entity tag.
type topBody struct {
	body []byte
	etag string
}

// key is q in a canonical form: the cache key.
func (q *TopQuery) key() string {
	routes := slices.Clone(q.Routes)
	slices.Sort(routes)
	routes = slices.Compact(routes)
	var b strings.Builder
	b.WriteString(strconv.Itoa(q.History))
	b.WriteByte(0)
	b.WriteString(q.API)
	if q.OmitAPIs {
		b.WriteString("\x00-")
	}
	for _, r := range routes {
		b.WriteByte(0)
		b.WriteString(r)
	}
	return b.String()
}

// topBody returns the encoded snapshot for q in the current second,
// computing it on the first request of the second.
func (s *Stats) topBody(q TopQuery) (*topBody, error) {
	sec := s.now().Unix()
	key := q.key()
	c := &s.tops
	// The lock is held while computing so dashboards asking at the same
	// moment share one computation instead of each doing it.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sec != sec {
		c.sec, c.entries, c.bytes = sec, map[string]*topBody{}, 0
	}
	if tb := c.entries[key]; tb != nil {
		return tb, nil
	}
	tb, err := s.encodeTop(q)
	if err != nil {
		return nil, err
	}
	if len(c.entries) < maxCachedQueries && c.bytes+len(tb.body) <= maxCachedBytes {
		c.entries[key] = tb
		c.bytes += len(tb.body)
	}
	return tb, nil
}

// etagMatch reports whether an If-None-Match header value names etag
// (RFC 9110 section 13.1.2: a list of tags or "*", weak comparison).
func etagMatch(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// encodeTop computes and encodes one snapshot. The entity tag is a hash of
// the body, so equal bytes always revalidate, whichever query or second
// produced them.
func (s *Stats) encodeTop(q TopQuery) (*topBody, error) {
	body, err := json.Marshal(s.Top(q))
	if err != nil {
		return nil, fmt.Errorf("stats: encode /api/v1/top: %w", err)
	}
	sum := sha256.Sum256(body)
	return &topBody{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}, nil
}
