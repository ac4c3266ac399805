package sharedstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Leasing quota: Acquire takes positions in a window from Redis several at
// a time and hands them out locally, so a busy key costs a Redis round trip
// per lease instead of per request (as Envoy's and Flex's distributed
// limiters do with locally cached quota).
//
// Why the limit is never exceeded, by any number of replicas together:
// every position is still taken from the one Redis counter with INCRBY, so
// each position 1..limit is held by exactly one request in the whole
// cluster, and a replica admits only the positions it holds that are ≤
// limit. A lease is used only inside the window it was taken in: it expires
// at (the time before the call was sent) + (the time left Redis reported),
// which is no later than the moment Redis drops the counter, so a leased
// position is never used once a new window has opened.
//
// What leasing costs is the other direction, bounded: positions a replica
// leased and has not handed out when its traffic for the key stops (or it
// shuts down) are not used by anyone in that window. A lease is at most
// maxLease positions, and at most 1/leaseShare of the limit, and at most
// 1/leaseShare of what was left of it at the previous lease; limits below
// 2×leaseShare lease one position at a time, which is exactly the
// unleased behaviour. So when demand exceeds the limit the cluster admits
// between limit − replicas × (maxLease−1) and limit requests per window
// (docs/policies.md).
//
// The lease grows with demand: one that was used up within leaseFast of
// being taken doubles the next one; one that lasted longer than leaseSlow
// halves it. A key requested a few times a second leases one position at a
// time; a key requested thousands of times a second settles at one round
// trip per leaseFast or so.
const (
	maxLease   = 1024
	leaseShare = 64
	leaseFast  = 50 * time.Millisecond
	leaseSlow  = time.Second
)

// counterLimit identifies one lease: a counter and the limit it is read
// against (a changed limit is a different key, see policy.RateLimitBucket,
// but a store must not rely on callers for that).
type counterLimit struct {
	key   string
	ttl   int64
	limit int64
}

// lease is one replica's share of one window of one counter.
type lease struct {
	mu sync.Mutex
	// next..end are the positions held and not yet handed out (next >
	// end: none); valid until deadline.
	next, end int64
	deadline  time.Time
	// exhausted: Redis's count reached the limit, so once next..end are
	// handed out every request in this window is denied without asking.
	exhausted bool
	// size is the number of positions the next lease asks for; taken is
	// when the current one was taken; seen is the count Redis reported
	// then.
	size  int64
	taken time.Time
	seen  int64
	// fetching is non-nil while one caller takes a new lease; the others
	// wait for it to close instead of each asking Redis.
	fetching chan struct{}
}

// leases is a store's leases with a lazy sweep of expired ones, so memory
// stays bounded by the keys with a live window.
type leases struct {
	m         sync.Map // counterLimit → *lease
	lastSweep atomic.Int64
}

func (ls *leases) get(id counterLimit, now time.Time) *lease {
	if v, ok := ls.m.Load(id); ok {
		return v.(*lease)
	}
	if last := ls.lastSweep.Load(); now.UnixNano()-last > int64(time.Second) && ls.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		ls.sweep(now)
	}
	v, _ := ls.m.LoadOrStore(id, &lease{size: 1})
	return v.(*lease)
}

// sweep drops leases whose window has ended and that nobody is refilling.
// A request still holding a dropped lease only loses its size history:
// positions come from Redis either way.
func (ls *leases) sweep(now time.Time) {
	ls.m.Range(func(k, v any) bool {
		l := v.(*lease)
		l.mu.Lock()
		dead := l.fetching == nil && !now.Before(l.deadline)
		l.mu.Unlock()
		if dead {
			ls.m.CompareAndDelete(k, v)
		}
		return true
	})
}

// Acquire takes one position in key's window of ttlMillis, read against
// limit: it returns the position (the request is admitted when it is ≤
// limit) and the milliseconds left in the window. Positions come from
// Redis in leases (see the comment at the top of this file); a count above
// the limit may be reported as limit+1.
func (s *Redis) Acquire(ctx context.Context, key string, limit, ttlMillis int64) (int64, int64, error) {
	if limit < 2*leaseShare {
		return s.Incr(ctx, key, ttlMillis)
	}
	l := s.leases.get(counterLimit{key, ttlMillis, limit}, time.Now())
	for {
		l.mu.Lock()
		now := time.Now()
		if now.Before(l.deadline) {
			left := l.deadline.Sub(now).Milliseconds()
			if l.next <= l.end {
				n := l.next
				l.next++
				l.mu.Unlock()
				return n, left, nil
			}
			if l.exhausted {
				l.mu.Unlock()
				return limit + 1, left, nil
			}
		}
		if ch := l.fetching; ch != nil {
			l.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return 0, 0, canceled(ctx.Err())
			}
		}
		size := l.nextSize(now, limit)
		ch := make(chan struct{})
		l.fetching = ch
		l.mu.Unlock()
		return s.refill(ctx, l, ch, key, limit, ttlMillis, size)
	}
}

// nextSize is the size of the lease about to be taken (l.mu held).
func (l *lease) nextSize(now time.Time, limit int64) int64 {
	if !l.taken.IsZero() {
		switch age := now.Sub(l.taken); {
		case age < leaseFast:
			l.size *= 2
		case age > leaseSlow:
			l.size /= 2
		}
	}
	l.size = min(l.size, maxLease, limit/leaseShare, max(1, (limit-l.seen)/leaseShare))
	l.size = max(l.size, 1)
	return l.size
}

// refill takes size positions from Redis for l, keeps all but the first
// for later callers and returns the first to this one. The caller set
// l.fetching to ch; refill clears it.
func (s *Redis) refill(ctx context.Context, l *lease, ch chan struct{}, key string, limit, ttlMillis, size int64) (int64, int64, error) {
	// Before the call is sent, not after the reply: the window closes no
	// earlier than this plus the time left Redis reports.
	before := time.Now()
	err := s.gate()
	var last, left int64
	if err == nil {
		last, left, err = s.batch.incr(ctx, key, ttlMillis, size)
	}
	l.mu.Lock()
	defer func() {
		l.fetching = nil
		close(ch)
		l.mu.Unlock()
	}()
	if err != nil {
		return 0, 0, err
	}
	first := last - size + 1
	l.deadline = before.Add(time.Duration(left) * time.Millisecond)
	l.taken, l.seen = before, last
	l.exhausted = last >= limit
	l.next, l.end = first+1, min(last, limit)
	return first, left, nil
}
