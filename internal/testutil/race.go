//go:build race

package testutil

// raceEnabled: the test binary runs with the race detector; BuildProgram
// builds with it too.
const raceEnabled = true
