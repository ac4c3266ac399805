package exporters

import (
	"errors"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		"-1":                            0,
		"Thu, 01 Jan 2026 00:00:30 GMT": 30 * time.Second,
		"Wed, 31 Dec 2025 00:00:00 GMT": 0,
		"soon":                          0,
	} {
		if got := ParseRetryAfter(in, now); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}

func TestClassification(t *testing.T) {
	for code, retry := range map[int]bool{400: false, 401: false, 403: false, 404: false, 408: true, 413: false, 429: true, 500: true, 503: true} {
		if RetryableStatus(code) != retry {
			t.Errorf("%d: retryable %v", code, !retry)
		}
	}
	if e := AsError(errors.New("dial tcp: refused")); !e.Retryable || e.Status != 0 {
		t.Errorf("transport error: %+v", e)
	}
}
