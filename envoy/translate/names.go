package translate

import (
	"strings"

	"github.com/flexgw/flexgw/ir"
)

// Naming is decided here, in one place, because Envoy's stats are keyed by
// these names and the stats mapper (envoy/stats) depends on them.
//
//   - cluster name        = service key "namespace/name" (also the access
//     log's upstream_cluster, as in the built-in data plane)
//   - route configuration = ir listener name (one per listener, RDS)
//   - virtual host        = "flexgw" (one per listener; APIs share it by path)
//   - HCM stat_prefix     = statName(listener name)
//   - route stat_prefix   = RouteStatPrefix(api, route): "fgw_" + sanitized
//     api key and route name; the mapping back is Result.RouteStats.

// VirtualHostName is the single virtual host of every listener.
const VirtualHostName = "flexgw"

// RouteStatPrefixMarker starts every route stat_prefix; the bootstrap's tag
// specifier extracts the prefix as the flexgw_route tag by this marker.
const RouteStatPrefixMarker = "fgw_"

// ClusterName is the Envoy cluster of a service.
func ClusterName(serviceKey string) string { return serviceKey }

// RouteStatPrefix is the stat_prefix of one route of one API.
func RouteStatPrefix(a *ir.API, r *ir.Route) string {
	return RouteStatPrefixMarker + statName(a.Namespace+"_"+a.Name+"_"+r.Name)
}

// APILabel is the api_instance / api label value of an API: its key
// "namespace/name", as the built-in data plane writes it.
func APILabel(a *ir.API) string { return a.Key() }

// GRPCListenerName is the API listener of an ApiInstance, the authority
// proxyless clients dial as xds:///<name>: the ApiInstance name.
func GRPCListenerName(a *ir.API) string { return a.Name }

// statName keeps characters Envoy's stat names and tag regexes treat as
// plain: dots separate stat name segments, so they become '_'.
func statName(s string) string {
	if plainStatName(s) {
		return s // the usual case: nothing to replace, nothing to copy
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, c := range s {
		if statNameByte(c) {
			b.WriteByte(byte(c))
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func plainStatName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !statNameByte(rune(s[i])) {
			return false
		}
	}
	return true
}

func statNameByte(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
