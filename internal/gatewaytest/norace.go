//go:build !race

package gatewaytest

// raceEnabled: benchmarks (no -race) measure a gateway built as shipped.
const raceEnabled = false
