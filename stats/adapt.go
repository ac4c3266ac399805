package stats

import "github.com/flexgw/flexgw/observe"

// DataPlaneEndpoints adapts the built-in data plane's endpoint report
// ((*dataplane.DataPlane).Endpoints, an observe.EndpointStatus list) to Options.Endpoints, splitting
// health into its active-check and passive (outlier ejection) parts.
func DataPlaneEndpoints(list func() []observe.EndpointStatus) func() []EndpointHealth {
	return func() []EndpointHealth {
		eps := list()
		out := make([]EndpointHealth, 0, len(eps))
		for _, e := range eps {
			h := EndpointHealth{Service: e.Service, Endpoint: e.Endpoint, Healthy: e.Healthy, Passive: "ok"}
			if e.ActiveCheck {
				h.Active = "unhealthy"
				if e.ActiveHealthy {
					h.Active = "healthy"
				}
			}
			if e.Ejected {
				h.Passive = "ejected"
			}
			out = append(out, h)
		}
		return out
	}
}
