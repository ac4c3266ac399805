// Package snapshot builds the ir.Snapshot flexgw serves. It is the one
// place that knows every step between configuration and a published
// snapshot: compiling (ir), checking each policy's configuration (policy),
// checking the log outputs and tracing (logpipe, telemetry/tracing),
// applying the config-shaping policies and collecting warnings. `flexgw
// run`, `flexgw validate`, the Kubernetes source, the benchmarks and the
// tests that want "what the agent would serve" all come through here, so
// none of them can forget a step; once returned, a snapshot is never
// changed (ir's promise, kept by doing all of it inside ir.Compile).
//
// The agent adds the data planes' own refusals on top (agent.Compile);
// they only read the snapshot.
package snapshot

import (
	"errors"

	"github.com/flexgw/flexgw/config"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/logpipe"
	"github.com/flexgw/flexgw/policy"
	// The native-ext-*-flex policies speak Envoy's service protocols, so
	// they live apart from the policy engine; compiling registers them.
	_ "github.com/flexgw/flexgw/policy/native"
	"github.com/flexgw/flexgw/telemetry/tracing"
)

// Options are the compile options of the served snapshot.
func Options(version uint64) ir.CompileOptions {
	return ir.CompileOptions{
		Version:     version,
		CheckPolicy: policy.Check,
		CheckSnapshot: func(s *ir.Snapshot) error {
			return errors.Join(logpipe.Validate(s.Logging), tracing.Validate(s.Tracing))
		},
		Shape:    policy.Shape,
		Warnings: policy.Warnings,
	}
}

// LoadDir builds the snapshot of the configuration directory dir.
func LoadDir(dir string, version uint64) (*ir.Snapshot, error) {
	return ir.LoadDir(dir, Options(version))
}

// LoadFiles builds the snapshot of documents that do not come from a
// directory (the Kubernetes source).
func LoadFiles(files []config.File, version uint64) (*ir.Snapshot, error) {
	return ir.LoadFiles(files, Options(version))
}
