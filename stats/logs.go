package stats

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/flexgw/flexgw/accesslog"
)

// LogFilter selects access-log records for a subscriber. The zero value
// matches every record.
type LogFilter struct {
	// MinStatus keeps records whose response code is >= MinStatus; records
	// without a response (code 0) count as failures and always match a
	// MinStatus >= 500.
	MinStatus int
	// API keeps records of this API (exact api_instance); Unmatched keeps
	// those no API served.
	API string
	// Text keeps records where any of method, path, api, route, upstream,
	// request id or trace id contains it (case-insensitive).
	Text string
}

// Match reports whether rec passes the filter.
func (f *LogFilter) Match(rec *accesslog.Record) bool {
	if f.MinStatus > 0 && rec.ResponseCode < f.MinStatus && !(rec.ResponseCode == 0 && f.MinStatus >= 500) {
		return false
	}
	if f.API != "" && rec.APIInstance != f.API && (f.API != Unmatched || rec.APIInstance != "") {
		return false
	}
	if f.Text != "" {
		for _, v := range [...]string{rec.Path, rec.Method, rec.APIInstance, rec.Route, rec.UpstreamHost, rec.UpstreamCluster, rec.RequestID, rec.TraceID} {
			if containsFold(v, f.Text) {
				return true
			}
		}
		return false
	}
	return true
}

func containsFold(s, sub string) bool {
	if len(sub) > len(s) {
		return false
	}
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// subscriber is one log-stream reader with its own bounded queue.
type subscriber struct {
	filter  LogFilter
	ch      chan accesslog.Record
	dropped atomic.Uint64
}

// broker keeps the recent-record ring and fans records out. publish holds
// the mutex only to copy the record and try a non-blocking send per
// subscriber, so a slow reader never slows the gateway: it loses records
// instead, and the loss is counted.
type broker struct {
	mu      sync.Mutex
	ring    []accesslog.Record
	next    int
	full    bool
	subs    []*subscriber
	bufSize int
	max     int
	dropped atomic.Uint64
}

func newBroker(ring, buf, max int) *broker {
	return &broker{ring: make([]accesslog.Record, ring), bufSize: buf, max: max}
}

func (b *broker) publish(rec *accesslog.Record) {
	b.mu.Lock()
	b.ring[b.next] = *rec
	b.next++
	if b.next == len(b.ring) {
		b.next, b.full = 0, true
	}
	for _, sub := range b.subs {
		if !sub.filter.Match(rec) {
			continue
		}
		select {
		case sub.ch <- *rec:
		default:
			sub.dropped.Add(1)
			b.dropped.Add(1)
		}
	}
	b.mu.Unlock()
}

// subscribe registers a subscriber and returns up to backlog recent
// records matching f, oldest first; nil when the subscriber cap is reached. Registration and backlog happen under
// one lock so no record is missed or repeated between them.
func (b *broker) subscribe(f LogFilter, backlog int) (*subscriber, []accesslog.Record) {
	sub := &subscriber{filter: f, ch: make(chan accesslog.Record, b.bufSize)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.max > 0 && len(b.subs) >= b.max {
		return nil, nil
	}
	var back []accesslog.Record
	if backlog > 0 {
		n := b.next
		if b.full {
			n = len(b.ring)
		}
		for i := 0; i < n && len(back) < backlog; i++ {
			// Walk newest to oldest, then reverse.
			idx := (b.next - 1 - i + len(b.ring)) % len(b.ring)
			if f.Match(&b.ring[idx]) {
				back = append(back, b.ring[idx])
			}
		}
		for i, j := 0, len(back)-1; i < j; i, j = i+1, j-1 {
			back[i], back[j] = back[j], back[i]
		}
	}
	// Copy on write: publish iterates b.subs under the same lock, but a
	// fresh slice keeps unsubscribe simple.
	subs := make([]*subscriber, 0, len(b.subs)+1)
	subs = append(subs, b.subs...)
	b.subs = append(subs, sub)
	return sub, back
}

func (b *broker) unsubscribe(sub *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	subs := make([]*subscriber, 0, len(b.subs))
	for _, s := range b.subs {
		if s != sub {
			subs = append(subs, s)
		}
	}
	b.subs = subs
}

func (b *broker) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}
