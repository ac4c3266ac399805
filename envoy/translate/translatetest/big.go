// Package translatetest builds large IR snapshots for the translator's
// benchmarks and memory tests (envoy/translate, envoy/xds): one generator,
// so every benchmark of "1,000 APIs / 5,000 routes" measures the same config.
package translatetest

import (
	"fmt"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// BigSnapshot returns apis ApiInstances spread over 10 listeners,
// routesPer routes each (a regex path with a capture group, methods, a
// destinationPath and one retry), and one service per API with two
// endpoints, an active health check and outlier detection.
func BigSnapshot(apis, routesPer int) *ir.Snapshot {
	s := &ir.Snapshot{Version: 1}
	for l := 0; l < 10; l++ {
		s.Listeners = append(s.Listeners, &ir.Listener{Name: fmt.Sprintf("http_0.0.0.0_%d", 8000+l), Protocol: ir.HTTP, Host: "0.0.0.0", Port: 8000 + l})
	}
	for i := 0; i < apis; i++ {
		svc := &ir.Service{Name: fmt.Sprintf("svc-%d", i), Namespace: "bench", Protocol: ir.HTTP,
			Endpoints:   []ir.Endpoint{{Host: "10.0.0.1", Port: 10000 + i%50000}, {Host: "10.0.0.2", Port: 10000 + i%50000}},
			LB:          ir.RoundRobin,
			HealthCheck: &ir.HealthCheck{Path: "/healthz", Interval: 10 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 3},
			Outlier:     &ir.OutlierDetection{ConsecutiveFailures: 5, BaseEjectionTime: 30 * time.Second}}
		s.Services = append(s.Services, svc)
		api := &ir.API{Name: fmt.Sprintf("api-%d", i), Namespace: "bench", BasePath: fmt.Sprintf("/api-%d", i)}
		// Expressions are compiled per rule. The IR compiler now shares one
		// per distinct source, so a real snapshot holds fewer; kept per rule
		// so the numbers stay comparable with earlier runs.
		for r := 0; r < routesPer; r++ {
			api.Routes = append(api.Routes, &ir.Route{
				Name:            fmt.Sprintf("r%d", r),
				Rules:           []ir.Rule{{Path: ir.MustRegexp(fmt.Sprintf("/res%d(/.*)?", r)), Methods: ir.MustRegexp("GET|POST")}},
				Destinations:    []ir.Destination{{Service: svc.Key(), Weight: 100}},
				DestinationPath: "/v1",
				Retry:           ir.RetryPolicy{Attempts: 1},
			})
		}
		l := s.Listeners[i%10]
		l.APIs = append(l.APIs, api)
	}
	return s
}
