package stats

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flexgw/flexgw/envoy/translate"
)

var healthyDesc = prometheus.NewDesc("flexgw_upstream_endpoint_healthy",
	"1 when the upstream endpoint is healthy (active check and passive ejection), 0 when not.",
	[]string{"service", "endpoint"}, nil)

// MapClusters converts Envoy's admin GET /clusters text output
// ("<cluster>::<host:port>::health_flags::healthy" lines) to
// flexgw_upstream_endpoint_healthy for the services of the translation;
// Envoy's own clusters (the ADS cluster, the OTLP cluster) are left out.
func MapClusters(r io.Reader, res *translate.Result) ([]prometheus.Metric, error) {
	services := map[string]bool{}
	if res != nil {
		for _, c := range res.Envoy.Clusters {
			services[c.GetName()] = true
		}
	}
	health := map[[2]string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "::")
		if len(parts) != 4 || parts[2] != "health_flags" || !services[parts[0]] {
			continue
		}
		v := 0.0
		if parts[3] == "healthy" {
			v = 1
		}
		health[[2]string{parts[0], parts[1]}] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("clusters: %w", err)
	}
	keys := make([][2]string, 0, len(health))
	for k := range health {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"\x00"+keys[i][1] < keys[j][0]+"\x00"+keys[j][1] })
	out := make([]prometheus.Metric, 0, len(keys))
	for _, k := range keys {
		out = append(out, prometheus.MustNewConstMetric(healthyDesc, prometheus.GaugeValue, health[k], k[0], k[1]))
	}
	return out, nil
}
