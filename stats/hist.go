package stats

import "math/bits"

// The latency histogram is log-linear over microseconds: exact below 8 µs,
// then four buckets per power of two up to 2^36 µs (about 19 hours), so any
// value lands in a bucket at most 25% wide. 140 fixed buckets make a
// per-second histogram cheap to update (one increment) and to merge (a
// vector add), which is what a rolling window needs.
const numBuckets = 8 + (36-3)*4

type hist [numBuckets]uint32

// bucketOf maps microseconds to a bucket index.
func bucketOf(us int64) int {
	if us < 8 {
		if us < 0 {
			return 0
		}
		return int(us)
	}
	e := bits.Len64(uint64(us)) - 1
	if e >= 36 {
		return numBuckets - 1
	}
	sub := int(uint64(us)>>(e-2)) & 3
	return 8 + (e-3)*4 + sub
}

// bucketRange is bucket i's range [lo, hi) in microseconds.
func bucketRange(i int) (lo, hi float64) {
	if i < 8 {
		return float64(i), float64(i + 1)
	}
	e := (i-8)/4 + 3
	sub := (i - 8) % 4
	return float64(uint64(4+sub) << (e - 2)), float64(uint64(5+sub) << (e - 2))
}

// bucketMid is the middle of bucket i: within ~12% of any value in it.
func bucketMid(i int) float64 {
	lo, hi := bucketRange(i)
	return (lo + hi) / 2
}

func (h *hist) add(o *hist) {
	for i := range h {
		h[i] += o[i]
	}
}

// quantile returns the q-quantile (0<q<=1) in milliseconds, 0 when empty.
func (h *hist) quantile(q float64) float64 {
	var n uint64
	for _, c := range h {
		n += uint64(c)
	}
	return h.quantileN(q, n)
}

func (h *hist) quantileN(q float64, n uint64) float64 {
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h {
		if seen+uint64(c) >= rank {
			// Interpolate inside the bucket, assuming its samples are spread
			// evenly, so neighbouring percentiles do not collapse onto one
			// bucket boundary.
			lo, hi := bucketRange(i)
			return (lo + (hi-lo)*float64(rank-seen)/float64(c)) / 1000
		}
		seen += uint64(c)
	}
	lo, _ := bucketRange(numBuckets - 1)
	return lo / 1000
}
