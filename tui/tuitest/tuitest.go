// Package tuitest reads `flexgw top --once` frames for end-to-end tests, so
// a test that starts the real binary can assert what a user would read.
package tuitest

import (
	"strconv"
	"strings"
)

// APIRPS returns the RPS column of api's row in a --once frame, and false
// when the frame has no row for api.
func APIRPS(frame, api string) (float64, bool) {
	for _, line := range strings.Split(frame, "\n") {
		f := strings.Fields(line)
		// An API row reads "- <name> (<routes>) <rps> ..." ("+" when collapsed).
		if len(f) < 4 || (f[0] != "-" && f[0] != "+") || f[1] != api || !strings.HasPrefix(f[2], "(") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(f[3], "M"), 64)
		if err != nil {
			return 0, false
		}
		if strings.HasSuffix(f[3], "M") {
			v *= 1e6
		}
		return v, true
	}
	return 0, false
}
