package agent

import (
	"sync"
	"time"

	"github.com/flexgw/flexgw/ir"
)

// Status is what /api/v1/status reports: which build runs, which snapshot
// serves, and how the last reload went.
type Status struct {
	Version         string    `json:"version"`
	Commit          string    `json:"commit"`
	GatewayID       string    `json:"gatewayId"`
	DataPlane       string    `json:"dataplane"`
	DataPlaneReason string    `json:"dataplaneReason,omitempty"`
	StartedAt       time.Time `json:"startedAt"`
	UptimeSeconds   float64   `json:"uptimeSeconds"`
	Ready           bool      `json:"ready"`
	Draining        bool      `json:"draining"`
	SnapshotVersion uint64    `json:"snapshotVersion"`
	SnapshotHash    string    `json:"snapshotHash,omitempty"`
	Summary         string    `json:"summary,omitempty"`
	LastReload      Reload    `json:"lastReload"`
	// Components carries the status of optional parts (xds, ebpf, logpipe).
	Components map[string]any `json:"components,omitempty"`
}

// Reload is the outcome of one reload attempt.
type Reload struct {
	Time   time.Time `json:"time"`
	Result string    `json:"result"` // one of the result* constants, "" before the first
	Reason string    `json:"reason,omitempty"`
	Error  string    `json:"error,omitempty"`
	// Errors lists every problem, one "FILE:LINE: Kind/name: field: reason" each.
	Errors []string `json:"errors,omitempty"`
}

// Reload results.
const (
	resultSuccess = "success"
	resultFailure = "failure"
	// resultUnchanged: the directory compiled to the snapshot already serving.
	resultUnchanged = "unchanged"
	// resultRecovered: the first good reload after a failure (the fix may
	// have restored exactly what was serving).
	resultRecovered = "recovered"
)

// state is the agent's mutable status, guarded by one mutex; it is read by
// the admin API and written by the reload loop only.
type state struct {
	mu       sync.RWMutex
	current  *ir.Snapshot
	last     Reload
	ready    bool
	draining bool
}

func (s *state) snapshot() *ir.Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current
}
