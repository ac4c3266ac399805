//go:build race

package gatewaytest

// raceEnabled: the test binary runs with the race detector, so the gateway
// is built with it too.
const raceEnabled = true
