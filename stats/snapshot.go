package stats

import (
	"math"
	"sort"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/stats/topapi"
)

// Unmatched names the pseudo-API of requests no API served: the name the
// metrics and the Logs view use too.
const Unmatched = accesslog.Unmatched

// AllRoutes in TopQuery.Routes asks for the routes of every API.
const AllRoutes = "*"

// TopQuery narrows a snapshot so a dashboard refreshing ten times a second
// with a thousand routes fetches only what it shows.
type TopQuery struct {
	// History is how many seconds of sparkline history to include per API
	// (0 = none, at most the 120 kept).
	History int
	// Routes lists the APIs whose routes and services to include
	// (AllRoutes for all); other APIs carry only RouteCount.
	Routes []string
	// API, when set, includes that API's routes (the TUI's drill-down).
	// Included routes carry History seconds of sparklines, like APIs.
	API string
	// OmitAPIs leaves the API list out (the header's totals still count
	// every API): what a dashboard showing another view needs.
	OmitAPIs bool
}

func (q *TopQuery) wantsRoutes(api, statsKey string) bool {
	if q.API != "" && (q.API == api || q.API == statsKey) {
		return true
	}
	for _, r := range q.Routes {
		if r == AllRoutes || r == api || r == statsKey {
			return true
		}
	}
	return false
}

// Top computes one snapshot.
func (s *Stats) Top(q TopQuery) *topapi.Top {
	now := s.now()
	sec := now.Unix()
	sp := span(now, s.start)
	hist := min(max(q.History, 0), historySeconds)

	t := &topapi.Top{}
	s.header(&t.Header, now)

	// Copy the series maps so reading them does not hold s.mu while
	// histograms are merged.
	s.mu.RLock()
	apis := make(map[string]*series, len(s.apis))
	for k, v := range s.apis {
		apis[k] = v
	}
	routes := make(map[seriesKey]*series, len(s.routes))
	for k, v := range s.routes {
		routes[k] = v
	}
	services := make(map[seriesKey]*series, len(s.services))
	for k, v := range s.services {
		services[k] = v
	}
	s.mu.RUnlock()
	// Observed route and service names per API, so each API below looks
	// only at its own.
	routesOf := map[string][]string{}
	for k := range routes {
		routesOf[k.api] = append(routesOf[k.api], k.name)
	}
	servicesOf := map[string][]string{}
	for k := range services {
		servicesOf[k.api] = append(servicesOf[k.api], k.name)
	}

	var totals agg
	rpsBuf := make([]float64, historySeconds)
	p99Buf := make([]float64, historySeconds)
	seen := map[string]bool{}
	addAPI := func(a topapi.API, statsKey string, routeNames []string, serviceNames []string) {
		seen[statsKey] = true
		var aa agg
		if ser := apis[statsKey]; ser != nil {
			if hist > 0 && !q.OmitAPIs {
				ser.read(sec, &aa, rpsBuf, p99Buf)
				a.RPSHistory = tail(rpsBuf, hist, 1)
				a.P99History = tail(p99Buf, hist, 1000)
			} else {
				ser.read(sec, &aa, nil, nil)
			}
		}
		totals.merge(&aa)
		if q.OmitAPIs {
			return
		}
		a.Rates = round(aa.rates(sp))
		drill := q.API != "" && (q.API == a.Name || q.API == statsKey)
		withRoutes := q.wantsRoutes(a.Name, statsKey)
		names := map[string]bool{}
		for _, rn := range routeNames {
			names[rn] = true
		}
		observed := routesOf[statsKey]
		sort.Strings(observed)
		for _, n := range observed {
			if !names[n] {
				names[n] = true
				routeNames = append(routeNames, n)
			}
		}
		a.RouteCount = len(routeNames)
		for _, rn := range routeNames {
			if !withRoutes {
				break
			}
			r := topapi.Route{Name: rn}
			if ser := routes[seriesKey{statsKey, rn}]; ser != nil {
				var ra agg
				if (drill || withRoutes) && hist > 0 {
					ser.read(sec, &ra, rpsBuf, p99Buf)
					r.RPSHistory = tail(rpsBuf, hist, 1)
					r.P99History = tail(p99Buf, hist, 1000)
				} else {
					ser.read(sec, &ra, nil, nil)
				}
				r.Rates = round(ra.rates(sp))
			}
			a.Routes = append(a.Routes, r)
		}
		if !withRoutes {
			// Services are listed with the routes: both are what an
			// expanded API or its drill-down shows.
			t.APIs = append(t.APIs, a)
			return
		}
		svcNames := map[string]bool{}
		for _, n := range serviceNames {
			svcNames[n] = true
		}
		for _, n := range servicesOf[statsKey] {
			if !svcNames[n] {
				svcNames[n] = true
				serviceNames = append(serviceNames, n)
			}
		}
		sort.Strings(serviceNames)
		for _, sn := range serviceNames {
			sv := topapi.Service{Name: sn}
			if ser := services[seriesKey{statsKey, sn}]; ser != nil {
				var sa agg
				ser.read(sec, &sa, nil, nil)
				sv.Rates = round(sa.rates(sp))
			}
			a.Services = append(a.Services, sv)
		}
		t.APIs = append(t.APIs, a)
	}

	if s.opts.Snapshot != nil {
		if snap := s.opts.Snapshot(); snap != nil {
			for _, l := range snap.Listeners {
				for _, api := range l.APIs {
					// The data plane labels requests with the API key; accept
					// the bare name too so either convention shows up.
					key := api.Key()
					if apis[key] == nil && apis[api.Name] != nil {
						key = api.Name
					}
					if seen[key] {
						continue
					}
					var rn, sn []string
					svcSeen := map[string]bool{}
					for _, r := range api.Routes {
						rn = append(rn, r.Name)
						for _, d := range r.Destinations {
							if !svcSeen[d.Service] {
								svcSeen[d.Service] = true
								sn = append(sn, d.Service)
							}
						}
					}
					addAPI(topapi.API{Name: api.Key(), BasePath: api.BasePath, Listener: l.Name}, key, rn, sn)
				}
			}
		}
	}
	var rest []string
	for k := range apis {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		name := k
		if name == "" {
			name = Unmatched
		}
		addAPI(topapi.API{Name: name}, k, nil, nil)
	}
	t.Header.Totals = round(totals.rates(sp))

	t.Kernel = topapi.Kernel{Reason: "no eBPF probe in this gateway"}
	if s.opts.Kernel != nil {
		t.Kernel = s.opts.Kernel()
	}
	t.Upstreams = s.upstreams(&t.Kernel)
	if s.opts.Pipeline != nil {
		t.Pipeline = s.opts.Pipeline()
		s.pipelineRates(&t.Pipeline, now)
	}
	return t
}

func (s *Stats) header(h *topapi.Header, now time.Time) {
	if s.opts.Status != nil {
		st := s.opts.Status()
		h.GatewayID, h.Version, h.DataPlane = st.GatewayID, st.Version, st.DataPlane
		h.SnapshotVersion = st.SnapshotVersion
		h.Reload = topapi.Reload{OK: st.ReloadOK, Error: st.ReloadError, At: st.ReloadAt}
	}
	h.StartedAt = s.start
	h.Now = now
	h.UptimeSeconds = math.Round(now.Sub(s.start).Seconds())
	h.WindowSeconds = windowSeconds
	h.HistorySeconds = historySeconds
	h.LogSubscribers = s.logs.count()
	h.LogDropped = s.logs.dropped.Load()
}

func (s *Stats) upstreams(k *topapi.Kernel) []topapi.Upstream {
	type key = seriesKey
	var out []topapi.Upstream
	idx := map[key]int{}
	add := func(svc, ep string) *topapi.Upstream {
		if i, ok := idx[key{svc, ep}]; ok {
			return &out[i]
		}
		idx[key{svc, ep}] = len(out)
		// Without any health report the endpoint takes traffic.
		out = append(out, topapi.Upstream{Service: svc, Endpoint: ep, Healthy: true})
		return &out[len(out)-1]
	}
	if s.opts.Snapshot != nil {
		if snap := s.opts.Snapshot(); snap != nil {
			for _, svc := range snap.Services {
				for _, ep := range svc.Endpoints {
					add(svc.Key(), ep.Address())
				}
			}
		}
	}
	if s.opts.Endpoints != nil {
		for _, e := range s.opts.Endpoints() {
			u := add(e.Service, e.Endpoint)
			u.Healthy, u.Active, u.Passive = e.Healthy, e.Active, e.Passive
		}
	} else {
		s.mu.RLock()
		for hk, healthy := range s.health {
			u := add(hk.api, hk.name)
			u.Healthy = healthy
		}
		s.mu.RUnlock()
	}
	// The kernel's view is per configured endpoint (service and endpoint
	// text), so two services naming the same host:port each get their own
	// numbers, marked shared when the kernel cannot tell them apart.
	for i := range k.Endpoints {
		ke := &k.Endpoints[i]
		if j, ok := idx[key{ke.Service, ke.Endpoint}]; ok {
			out[j].Kernel = ke
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Endpoint < out[j].Endpoint
	})
	return out
}

// pipelineRates fills SentPerSec from successive Sent counters when the
// provider reports only totals.
func (s *Stats) pipelineRates(p *topapi.Pipeline, now time.Time) {
	s.rateMu.Lock()
	defer s.rateMu.Unlock()
	for i := range p.Exporters {
		e := &p.Exporters[i]
		if e.SentPerSec != 0 {
			continue
		}
		prev, ok := s.sentPrev[e.Name]
		switch {
		case !ok || e.Sent < prev.sent:
			s.sentPrev[e.Name] = sentSample{at: now, sent: e.Sent}
		case now.Sub(prev.at) >= 500*time.Millisecond:
			r := float64(e.Sent-prev.sent) / now.Sub(prev.at).Seconds()
			s.sentPrev[e.Name] = sentSample{at: now, sent: e.Sent, rate: r}
			e.SentPerSec = math.Round(r*100) / 100
		default:
			e.SentPerSec = math.Round(prev.rate*100) / 100
		}
	}
}

// tail returns the last n points of v, rounded to 1/res.
func tail(v []float64, n int, res float64) []float64 {
	out := make([]float64, n)
	for i, x := range v[len(v)-n:] {
		out[i] = math.Round(x*res) / res
	}
	return out
}

// round trims the floats so the JSON stays short and stable.
func round(r topapi.Rates) topapi.Rates {
	r2 := func(x float64) float64 { return math.Round(x*100) / 100 }
	r3 := func(x float64) float64 { return math.Round(x*1000) / 1000 }
	r.RPS = r2(r.RPS)
	r.Pct2xx, r.Pct4xx, r.Pct5xx, r.ErrorPct = r2(r.Pct2xx), r2(r.Pct4xx), r2(r.Pct5xx), r2(r.ErrorPct)
	r.P50Ms, r.P95Ms, r.P99Ms, r.UpstreamP99Ms = r3(r.P50Ms), r3(r.P95Ms), r3(r.P99Ms), r3(r.UpstreamP99Ms)
	r.AvgUpstreamMs, r.AvgOverheadMs = r3(r.AvgUpstreamMs), r3(r.AvgOverheadMs)
	return r
}
