package policy

import (
	"encoding/json"
	"time"
)

// idle-timeout-flex (Flex's "Upstream Idle Timeout") is a shaping policy:
// Shape sets Service.IdleTimeout on the bound Service (or every service an
// API's routes reach); the built-in data plane drops pooled connections
// idle that long, and Envoy's cluster gets common_http_protocol_options
// idle_timeout.
func init() {
	Register(shaping{"idle-timeout-flex", func(raw json.RawMessage) error { _, err := parseUpstreamIdle(raw); return err }})
}

func parseUpstreamIdle(raw json.RawMessage) (time.Duration, error) { return parseIdleSeconds(raw) }
