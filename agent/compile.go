package agent

import (
	"fmt"

	"github.com/flexgw/flexgw/config"
	"github.com/flexgw/flexgw/dataplane"
	"github.com/flexgw/flexgw/envoy/translate"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/snapshot"
)

// Compile loads a config directory into a snapshot the way `flexgw run`
// does on every reload (snapshot.LoadDir: structure, policy configs, log
// outputs, tracing, the config-shaping policies) and refuses what either
// data plane would. `flexgw validate` calls it too, so both accept and
// reject exactly the same input.
func Compile(dir string, version uint64) (*ir.Snapshot, error) {
	snap, err := snapshot.LoadDir(dir, version)
	return checkDataPlanes(snap, err, checkEnvoy)
}

// CompileFiles is Compile for documents that do not come from a directory
// (the Kubernetes source): the same checks, the same snapshot.
func CompileFiles(files []config.File, version uint64) (*ir.Snapshot, error) {
	snap, err := snapshot.LoadFiles(files, version)
	return checkDataPlanes(snap, err, checkEnvoy)
}

// checkEnvoy is the Envoy half of checkDataPlanes: the translation, made
// to be thrown away.
func checkEnvoy(snap *ir.Snapshot) error {
	_, err := translate.Translate(snap, translate.Options{})
	return err
}

// checkDataPlanes decides what the data planes themselves would refuse
// (TLS contexts the built-in proxy cannot build, resources Envoy would
// reject), so validate and run can never disagree. Both only read snap.
// envoyCheck is nil when the caller runs the Envoy check itself (see
// Agent.load).
func checkDataPlanes(snap *ir.Snapshot, err error, envoyCheck func(*ir.Snapshot) error) (*ir.Snapshot, error) {
	if err != nil {
		return nil, err
	}
	if err := dataplane.Check(snap); err != nil {
		return nil, err
	}
	if envoyCheck != nil {
		if err := envoyCheck(snap); err != nil {
			return nil, fmt.Errorf("envoy: %w", err)
		}
	}
	return snap, nil
}
