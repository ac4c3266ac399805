package agent

import (
	"context"
	"os"
	"path/filepath"
	"sync"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/logpipe/fluentbit"
)

// startFluentBit supervises Fluent Bit tailing Envoy's access log into our
// output plugin, when both are installed. It reports whether it did; if
// not, the in-process pipeline ships the log instead.
// The supervisor runs until ctx ends; wg tracks it.
func (a *Agent) startFluentBit(ctx context.Context, first *ir.Snapshot, accessLogPath string, wg *sync.WaitGroup) bool {
	bin, ok := fluentbit.Available()
	if !ok {
		a.log.Info("log shipping in process: no fluent-bit on PATH")
		return false
	}
	plugin := a.opts.FluentBitPlugin
	if _, err := os.Stat(plugin); plugin == "" || err != nil {
		a.log.Warn("log shipping in process: fluent-bit found but not the output plugin (make plugin; --fluent-bit-plugin)", "plugin", plugin)
		return false
	}
	abs := func(p string) string { q, _ := filepath.Abs(p); return q }
	dir := filepath.Join(abs(a.opts.StateDir), "fluent-bit")
	sup := &fluentbit.Supervisor{
		Binary: bin,
		Dir:    dir,
		Logger: a.opts.Logger,
		Config: fluentbit.Config{
			AccessLogPath: abs(accessLogPath),
			StateDir:      dir,
			PluginPath:    abs(plugin),
			QueueDir:      filepath.Join(dir, "queue"),
			GatewayID:     a.opts.GatewayID,
			Logging:       first.Logging,
		},
	}
	if _, err := sup.WriteConfig(); err != nil {
		a.log.Error("log shipping in process: fluent-bit config", "error", err)
		return false
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := sup.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("fluent-bit supervisor stopped", "error", err)
		}
	}()
	a.log.Info("log shipping through fluent-bit", "binary", bin, "plugin", plugin)
	return true
}
