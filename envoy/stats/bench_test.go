package stats

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/flexgw/flexgw/envoy/translate"
)

// BenchmarkMap5000Routes maps one /stats/prometheus page of an Envoy with
// 5,000 routes (about 20 per-route lines each, as Envoy prints them) and a
// few listeners: the agent's cost per scrape of Envoy's stats.
func BenchmarkMap5000Routes(b *testing.B) {
	var page bytes.Buffer
	res := &translate.Result{ListenerStats: map[string]string{}}
	for l := 0; l < 4; l++ {
		prefix := fmt.Sprintf("http_0_0_0_0_%d", 8080+l)
		res.ListenerStats[prefix] = fmt.Sprintf("http_0.0.0.0_%d", 8080+l)
		fmt.Fprintf(&page, "envoy_http_downstream_cx_active{envoy_http_conn_manager_prefix=%q} %d\n", prefix, l)
	}
	for r := 0; r < 5000; r++ {
		tag := fmt.Sprintf(`envoy_virtual_host="flexgw",flexgw_route="fgw_default_api-%d_route-%d"`, r/5, r%5)
		for _, class := range []string{"2xx", "4xx", "5xx"} {
			fmt.Fprintf(&page, "envoy_vhost_route_upstream_rq{envoy_response_code_class=%q,%s} 10\n", class, tag)
		}
		for _, le := range []string{"0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000", "60000", "+Inf"} {
			fmt.Fprintf(&page, "envoy_vhost_route_upstream_rq_time_bucket{%s,le=%q} 10\n", tag, le)
		}
		fmt.Fprintf(&page, "envoy_vhost_route_upstream_rq_time_sum{%s} 100\nenvoy_vhost_route_upstream_rq_time_count{%s} 10\n", tag, tag)
	}
	body := page.Bytes()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ms, err := Map(bytes.NewReader(body), res)
		if err != nil || len(ms) != 4 {
			b.Fatalf("%d metrics, %v", len(ms), err)
		}
	}
}
