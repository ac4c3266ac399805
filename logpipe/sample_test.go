package logpipe

import (
	"fmt"
	"testing"
	"time"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/policy"
)

// TestSampleKeepsErrorsDenialsAndSlow: with sampling on, every 5xx, every
// policy denial (as the policy package and the built-in data plane write
// it) and every slow request survives; ordinary records are thinned to
// roughly the rate; with sampling off (the default) everything is kept.
func TestSampleKeepsErrorsDenialsAndSlow(t *testing.T) {
	entry := func(t *testing.T, line string) *Entry {
		t.Helper()
		e, err := DecodeJSON([]byte(line))
		if err != nil {
			t.Fatalf("decode %s: %v", line, err)
		}
		return &e
	}
	// A rate so small that a kept ordinary record out of 2,000 is a bug,
	// not luck: P(keep one) per record is 1e-9.
	s := SampleOptions{Rate: 1e-9, SlowerThan: 250 * time.Millisecond}
	always := map[string]string{
		"5xx":         `{"response_code":503,"duration":1}`,
		"denied":      fmt.Sprintf(`{"response_code":429,"duration":1,"policy":"rate-limiting-flex","policy_outcome":%q}`, policy.Denied),
		"slow":        `{"response_code":200,"duration":250}`,
		"record-5xx":  string((&accesslog.Record{ResponseCode: 502, Duration: time.Millisecond}).AppendJSON(nil)),
		"record-slow": string((&accesslog.Record{ResponseCode: 200, Duration: time.Second}).AppendJSON(nil)),
	}
	for name, line := range always {
		e := entry(t, line)
		for range 2000 {
			if !s.keep(e) {
				t.Fatalf("%s: sampled out %s", name, line)
			}
		}
	}
	ordinary := entry(t, `{"response_code":200,"duration":3}`)
	kept := 0
	for range 2000 {
		if s.keep(ordinary) {
			kept++
		}
	}
	if kept != 0 {
		t.Errorf("rate 1e-9 kept %d of 2000 ordinary records", kept)
	}
	// Roughly the configured rate: 10,000 draws at 0.3, ±5 points is more
	// than 10 standard deviations.
	half := SampleOptions{Rate: 0.3}
	kept = 0
	for range 10_000 {
		if half.keep(ordinary) {
			kept++
		}
	}
	if share := float64(kept) / 10_000; share < 0.25 || share > 0.35 {
		t.Errorf("rate 0.3 kept a share of %.3f", share)
	}
	// Off by default, and out-of-range rates mean off.
	for _, off := range []SampleOptions{{}, {Rate: 1}, {Rate: -1}} {
		for range 100 {
			if !off.keep(ordinary) {
				t.Fatalf("sampling %+v dropped an ordinary record", off)
			}
		}
	}
}
