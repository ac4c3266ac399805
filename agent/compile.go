package agent

import (
	"errors"
	"fmt"

	"github.com/flexgw/flexgw/config"
	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/envoy/translate"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/logpipe"
	"github.com/flexgw/flexgw/policy"
	// The native-ext-*-flex policies speak Envoy's service protocols, so
	// they live apart from the policy engine; compiling registers them.
	_ "github.com/flexgw/flexgw/policy/native"
	"github.com/flexgw/flexgw/telemetry/tracing"
)

// Compile loads a config directory into a snapshot the way `flexgw run`
// does on every reload: structure, policy configs, the config-shaping
// policies (tls, timeouts, circuit breakers), log outputs and tracing. `flexgw
// validate` calls it too, so both accept and reject exactly the same input.
func Compile(dir string, version uint64) (*ir.Snapshot, error) {
	return shape(ir.LoadDir(dir, compileOptions(version)))
}

// CompileFiles is Compile for documents that do not come from a directory
// (the Kubernetes source): the same checks, the same snapshot.
func CompileFiles(files []config.File, version uint64) (*ir.Snapshot, error) {
	return shape(ir.LoadFiles(files, compileOptions(version)))
}

func compileOptions(version uint64) ir.CompileOptions {
	return ir.CompileOptions{
		Version:     version,
		CheckPolicy: policy.Check,
		CheckSnapshot: func(s *ir.Snapshot) error {
			return errors.Join(logpipe.Validate(s.Logging), tracing.Validate(s.Tracing))
		},
	}
}

func shape(snap *ir.Snapshot, err error) (*ir.Snapshot, error) {
	if err != nil {
		return nil, err
	}
	// Shaping (TLS material, timeouts, circuit breakers) rewrites the
	// snapshot, so it runs only on a configuration that compiled cleanly.
	if err := policy.Shape(snap); err != nil {
		return nil, err
	}
	// What the data planes themselves would refuse (TLS contexts the
	// built-in proxy cannot build, resources Envoy would reject) is
	// decided here too, so validate and run can never disagree.
	if err := dataplane.Check(snap); err != nil {
		return nil, err
	}
	if _, err := translate.Translate(snap, translate.Options{}); err != nil {
		return nil, fmt.Errorf("envoy: %w", err)
	}
	snap.Warnings = policy.Warnings(snap)
	return snap, nil
}
