package stats

import (
	"sync"
	"time"
)

const (
	// windowSeconds is the span rates and percentiles are computed over:
	// the last complete seconds, so every snapshot taken within one second
	// holds the same numbers (and dashboards can revalidate, not refetch).
	windowSeconds = 10
	// histSlots is the ring of per-second histograms: the window plus the
	// second being filled.
	histSlots = windowSeconds + 1
	// historySeconds is the length of the sparkline histories.
	historySeconds = 120
)

// slot holds one second of counters for the sparklines and rates.
type slot struct {
	sec        int64
	count      uint32
	c2xx       uint32
	c4xx       uint32
	c5xx       uint32
	noResponse uint32
	denials    uint32
	sumTotalUs uint64
	sumUpUs    uint64
	// p99Us is the second's p99 once its histogram left the window;
	// p99Done says it was computed.
	p99Us   float32
	p99Done bool
}

// secHist is one second of latency histograms.
type secHist struct {
	sec   int64
	total hist
	up    hist
}

// series is the rolling statistics of one route, API or service. One mutex
// per series keeps the hot path short and uncontended across APIs; a
// request touches at most three series.
type series struct {
	mu            sync.Mutex
	slots         [historySeconds]slot
	hists         [histSlots]secHist
	requestsTotal uint64
	denialsTotal  uint64
}

// observation is what one finished request contributes.
type observation struct {
	sec     int64
	status  int
	denied  bool
	totalUs int64
	upUs    int64
}

func (s *series) observe(o *observation) {
	s.mu.Lock()
	sl := &s.slots[o.sec%historySeconds]
	if sl.sec > o.sec {
		// Older than the history (a late access-log record): only totals.
		s.requestsTotal++
		if o.denied {
			s.denialsTotal++
		}
		s.mu.Unlock()
		return
	}
	if sl.sec != o.sec {
		*sl = slot{sec: o.sec}
	}
	h := &s.hists[o.sec%histSlots]
	switch {
	case h.sec > o.sec:
		// Older than the histogram window: counted, not in percentiles.
		h = nil
	case h.sec != o.sec:
		s.retire(h)
		h.total = hist{}
		h.up = hist{}
		h.sec = o.sec
	}
	sl.count++
	switch {
	case o.status == 0:
		sl.noResponse++
	case o.status >= 500:
		sl.c5xx++
	case o.status >= 400:
		sl.c4xx++
	case o.status >= 200 && o.status < 300:
		sl.c2xx++
	}
	if o.denied {
		sl.denials++
		s.denialsTotal++
	}
	s.requestsTotal++
	sl.sumTotalUs += uint64(max(o.totalUs, 0))
	sl.sumUpUs += uint64(max(o.upUs, 0))
	if h != nil {
		h.total[bucketOf(o.totalUs)]++
		if o.upUs > 0 {
			h.up[bucketOf(o.upUs)]++
		}
	}
	s.mu.Unlock()
}

// retire stores the p99 of a histogram about to be reused into its
// second's slot, so the p99 sparkline outlives the histogram window.
func (s *series) retire(h *secHist) {
	if h.sec == 0 {
		return
	}
	sl := &s.slots[h.sec%historySeconds]
	if sl.sec == h.sec && !sl.p99Done {
		sl.p99Us = float32(h.total.quantileN(0.99, uint64(sl.count)) * 1000)
		sl.p99Done = true
	}
}

// agg is a series (or several merged) summarised over the window.
type agg struct {
	count, c2xx, c4xx, c5xx, noResponse, denials uint64
	sumTotalUs, sumUpUs                          uint64
	requestsTotal, denialsTotal                  uint64
	total, up                                    hist
}

func (a *agg) merge(o *agg) {
	a.count += o.count
	a.c2xx += o.c2xx
	a.c4xx += o.c4xx
	a.c5xx += o.c5xx
	a.noResponse += o.noResponse
	a.denials += o.denials
	a.sumTotalUs += o.sumTotalUs
	a.sumUpUs += o.sumUpUs
	a.requestsTotal += o.requestsTotal
	a.denialsTotal += o.denialsTotal
	a.total.add(&o.total)
	a.up.add(&o.up)
}

// read summarises the window of complete seconds before now (the current
// second) into a, and when rps/p99 are non-nil (historySeconds long) fills
// the per-second histories, which end at the same second.
func (s *series) read(now int64, a *agg, rps, p99 []float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a.requestsTotal += s.requestsTotal
	a.denialsTotal += s.denialsTotal
	for sec := now - windowSeconds; sec < now; sec++ {
		if sec <= 0 {
			continue
		}
		sl := &s.slots[sec%historySeconds]
		if sl.sec != sec {
			continue
		}
		a.count += uint64(sl.count)
		a.c2xx += uint64(sl.c2xx)
		a.c4xx += uint64(sl.c4xx)
		a.c5xx += uint64(sl.c5xx)
		a.noResponse += uint64(sl.noResponse)
		a.denials += uint64(sl.denials)
		a.sumTotalUs += sl.sumTotalUs
		a.sumUpUs += sl.sumUpUs
		h := &s.hists[sec%histSlots]
		if h.sec == sec {
			a.total.add(&h.total)
			a.up.add(&h.up)
		}
	}
	if rps == nil {
		return
	}
	// Histories end at the last complete second: a partial one would
	// always draw as a dip at the right edge.
	for i := range historySeconds {
		sec := now - historySeconds + int64(i)
		rps[i], p99[i] = 0, 0
		if sec <= 0 {
			continue
		}
		sl := &s.slots[sec%historySeconds]
		if sl.sec != sec {
			continue
		}
		rps[i] = float64(sl.count)
		switch h := &s.hists[sec%histSlots]; {
		case sl.p99Done:
			p99[i] = float64(sl.p99Us) / 1000
		case h.sec == sec:
			p99[i] = h.total.quantileN(0.99, uint64(sl.count))
		}
	}
}

// rates turns an aggregate into the wire form; span is the window length
// in seconds actually covered.
func (a *agg) rates(span float64) ratesOut {
	var r ratesOut
	r.RPS = float64(a.count) / span
	r.Requests = a.count
	r.RequestsTotal = a.requestsTotal
	r.Denials = a.denials
	r.DenialsTotal = a.denialsTotal
	if a.count > 0 {
		n := float64(a.count)
		r.Pct2xx = 100 * float64(a.c2xx) / n
		r.Pct4xx = 100 * float64(a.c4xx) / n
		r.Pct5xx = 100 * float64(a.c5xx) / n
		r.ErrorPct = 100 * float64(a.c5xx+a.noResponse) / n
		r.P50Ms = a.total.quantileN(0.50, a.count)
		r.P95Ms = a.total.quantileN(0.95, a.count)
		r.P99Ms = a.total.quantileN(0.99, a.count)
		r.UpstreamP99Ms = a.up.quantile(0.99)
		avgTotal := float64(a.sumTotalUs) / n / 1000
		r.AvgUpstreamMs = float64(a.sumUpUs) / n / 1000
		r.AvgOverheadMs = max(avgTotal-r.AvgUpstreamMs, 0)
	}
	return r
}

// span is the window length in seconds covered at now: the last
// windowSeconds complete seconds, or the part of them since start (floored
// at one second) while the gateway is younger than the window.
func span(now, start time.Time) float64 {
	end := now.Truncate(time.Second)
	w := float64(windowSeconds)
	if up := end.Sub(start).Seconds(); up < w {
		w = up
	}
	return max(w, 1)
}
