package ebpf

import (
	"math"
)

// NumBuckets is the number of log2 buckets of a kernel histogram. Bucket i
// counts values v (in microseconds) with 2^(i-1) < v <= 2^i; bucket 0 counts
// v <= 1µs and the last bucket also everything above its bound. It must
// match NUM_SLOTS in bpf/probe.bpf.c.
const NumBuckets = 40

// promBuckets is how many of the log2 buckets become Prometheus buckets:
// upper bounds 1µs .. 2^(promBuckets-1)µs (about 2.3 hours); anything larger
// lands in +Inf only. Enough for lifetimes, and the empty low buckets of a
// histogram cost nothing to compute.
const promBuckets = 34

// Hist is one log2 histogram as aggregated by the kernel.
type Hist struct {
	Buckets [NumBuckets]uint64
	// SumMicros is the sum of all observed values in microseconds (each
	// value rounded up to a whole microsecond).
	SumMicros uint64
}

// Count is the number of observations.
func (h *Hist) Count() uint64 {
	var n uint64
	for _, c := range h.Buckets {
		n += c
	}
	return n
}

// Add merges o into h.
func (h *Hist) Add(o *Hist) {
	for i := range h.Buckets {
		h.Buckets[i] += o.Buckets[i]
	}
	h.SumMicros += o.SumMicros
}

// bucketUpperSeconds is the inclusive upper bound of bucket i in seconds.
func bucketUpperSeconds(i int) float64 {
	return math.Ldexp(1, i) / 1e6
}

// promHistogram converts h into the cumulative buckets, count and sum (in
// seconds) prometheus.MustNewConstHistogram wants.
func (h *Hist) promHistogram() (buckets map[float64]uint64, count uint64, sum float64) {
	buckets = make(map[float64]uint64, promBuckets)
	var cum uint64
	for i := 0; i < promBuckets; i++ {
		cum += h.Buckets[i]
		buckets[bucketUpperSeconds(i)] = cum
	}
	return buckets, h.Count(), float64(h.SumMicros) / 1e6
}

// Quantile estimates the q-quantile (0 < q <= 1) in seconds by linear
// interpolation inside the log2 bucket that holds it, the way Prometheus'
// histogram_quantile does. It returns 0 for an empty histogram.
func (h *Hist) Quantile(q float64) float64 {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var cum uint64
	for i, c := range h.Buckets {
		if c == 0 {
			continue
		}
		if float64(cum+c) >= rank {
			lower := 0.0
			if i > 0 {
				lower = bucketUpperSeconds(i - 1)
			}
			upper := bucketUpperSeconds(i)
			return lower + (upper-lower)*(rank-float64(cum))/float64(c)
		}
		cum += c
	}
	return bucketUpperSeconds(NumBuckets - 1)
}

// Mean is the average observation in seconds, 0 when empty.
func (h *Hist) Mean() float64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	return float64(h.SumMicros) / 1e6 / float64(n)
}
