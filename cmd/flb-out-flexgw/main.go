// Command flb-out-flexgw is the Fluent Bit output plugin (build with
// -buildmode=c-shared, `make plugin`). It is a thin shim: package main
// holds only the exported entry points Fluent Bit's Go proxy calls; the
// work is in logpipe/flbplugin. Nothing is set up in main(), which never
// runs in a shared library.
package main

import (
	"C"
	"log/slog"
	"os"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"

	"github.com/flexgw/flexgw/logpipe/flbplugin"
)

var logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "flb-out-flexgw")

// FLBPluginRegister tells Fluent Bit our name and that we are an output.
//
//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) int {
	flbplugin.TuneRuntime()
	return output.FLBPluginRegister(def, flbplugin.Name, flbplugin.Description)
}

// FLBPluginInit starts one instance; a failed init stores nothing.
//
//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) int {
	inst, err := flbplugin.New(func(key string) string { return output.FLBPluginConfigKey(plugin, key) }, logger)
	if err != nil {
		logger.Error("init failed", "err", err)
		return output.FLB_ERROR
	}
	output.FLBPluginSetContext(plugin, inst)
	return output.FLB_OK
}

// FLBPluginFlush is the context-less entry point of old Fluent Bit
// versions; flexgw needs per-instance contexts.
//
//export FLBPluginFlush
func FLBPluginFlush(data unsafe.Pointer, length C.int, tag *C.char) int {
	logger.Error("this Fluent Bit does not call FLBPluginFlushCtx; upgrade Fluent Bit")
	return output.FLB_ERROR
}

// FLBPluginFlushCtx hands one msgpack chunk to the instance. The chunk is
// processed before returning, so it is read in place.
//
//export FLBPluginFlushCtx
func FLBPluginFlushCtx(ctx, data unsafe.Pointer, length C.int, tag *C.char) int {
	inst, _ := output.FLBPluginGetContext(ctx).(*flbplugin.Instance)
	if inst == nil {
		return output.FLB_ERROR
	}
	return inst.Flush(unsafe.Slice((*byte)(data), int(length)), C.GoString(tag))
}

// FLBPluginExitCtx drains and closes one instance.
//
//export FLBPluginExitCtx
func FLBPluginExitCtx(ctx unsafe.Pointer) int {
	if inst, _ := output.FLBPluginGetContext(ctx).(*flbplugin.Instance); inst != nil {
		if err := inst.Close(); err != nil {
			logger.Warn("exit with records still queued (sent after restart)", "err", err)
		}
	}
	return output.FLB_OK
}

// FLBPluginExit closes whatever instance is left.
//
//export FLBPluginExit
func FLBPluginExit() int {
	flbplugin.CloseAll()
	return output.FLB_OK
}

func main() {}
