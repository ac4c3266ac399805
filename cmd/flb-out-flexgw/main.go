// Command flb-out-flexgw is the Fluent Bit output plugin (build with
// -buildmode=c-shared, `make plugin`). It is a thin shim: package main
// holds only the exported entry points Fluent Bit's Go proxy calls and the
// few lines of C that reach into the structures the proxy passes; the work
// is in logpipe/flbplugin. Nothing is set up in main(), which never runs
// in a shared library.
//
// The C side is written here against Fluent Bit's proxy ABI
// (src/proxy/go/go.h and include/fluent-bit/flb_plugin_proxy.h of Fluent
// Bit) rather than taken from fluent-bit-go: that package links a whole
// msgpack codec the plugin does not use (it decodes chunks itself), and
// every package linked into the .so is relocated, initialised and
// scanned inside Fluent Bit's process.
package main

/*
#include <stdint.h>
#include <stdlib.h>

// What FLBPluginRegister fills in (flb_plugin_proxy.h; Fluent Bit
// allocates it zeroed, newer releases append fields after these).
struct flexgw_proxy_def {
	int type;
	int proxy;
	int flags;
	char *name;
	char *description;
};

// The first member of the API table Fluent Bit hands a Go output.
struct flexgw_api {
	char *(*output_get_property)(char *, void *);
};

struct flexgw_proxy_context {
	void *remote_context;
};

// The head of struct flbgo_output_plugin (src/proxy/go/go.h).
struct flexgw_output_plugin {
	char *name;
	struct flexgw_api *api;
	void *o_ins;
	struct flexgw_proxy_context *context;
};

static void flexgw_register(void *def, char *name, char *desc) {
	struct flexgw_proxy_def *d = def;
	d->type = 2;   // FLB_PROXY_OUTPUT_PLUGIN
	d->proxy = 11; // FLB_PROXY_GOLANG
	d->flags = 0;
	d->name = name;
	d->description = desc;
}

// The value stays owned by Fluent Bit; NULL when the key is unset.
static char *flexgw_property(void *plugin, char *key) {
	struct flexgw_output_plugin *p = plugin;
	return p->api->output_get_property(key, p->o_ins);
}

// The instance is known to Fluent Bit by a small integer, not a Go
// pointer (which C may not keep).
static void flexgw_set_context(void *plugin, uintptr_t id) {
	struct flexgw_output_plugin *p = plugin;
	p->context->remote_context = (void *)id;
}
*/
import "C"

import (
	"log/slog"
	"os"
	"sync"
	"unsafe"

	"github.com/flexgw/flexgw/logpipe/flbplugin"
)

var logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "flb-out-flexgw")

// instances maps the ids given to Fluent Bit as remote contexts to their
// instances.
var (
	mu        sync.Mutex
	instances = map[uintptr]*flbplugin.Instance{}
	lastID    uintptr
)

func lookup(ctx unsafe.Pointer) *flbplugin.Instance {
	mu.Lock()
	defer mu.Unlock()
	return instances[uintptr(ctx)]
}

// FLBPluginRegister tells Fluent Bit our name and that we are an output.
// The two strings stay allocated for the life of the process, as Fluent
// Bit keeps pointing at them.
//
//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) int {
	flbplugin.TuneRuntime()
	C.flexgw_register(def, C.CString(flbplugin.Name), C.CString(flbplugin.Description))
	return 0
}

// FLBPluginInit starts one instance; a failed init stores nothing.
//
//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) int {
	get := func(key string) string {
		k := C.CString(key)
		defer C.free(unsafe.Pointer(k))
		return C.GoString(C.flexgw_property(plugin, k))
	}
	inst, err := flbplugin.New(get, logger)
	if err != nil {
		logger.Error("init failed", "err", err)
		return flbplugin.Error
	}
	mu.Lock()
	lastID++
	id := lastID
	instances[id] = inst
	mu.Unlock()
	C.flexgw_set_context(plugin, C.uintptr_t(id))
	return flbplugin.OK
}

// FLBPluginFlush is the context-less entry point of old Fluent Bit
// versions; flexgw needs per-instance contexts.
//
//export FLBPluginFlush
func FLBPluginFlush(data unsafe.Pointer, length C.int, tag *C.char) int {
	logger.Error("this Fluent Bit does not call FLBPluginFlushCtx; upgrade Fluent Bit")
	return flbplugin.Error
}

// FLBPluginFlushCtx hands one msgpack chunk to the instance. The chunk is
// processed before returning, so it is read in place.
//
//export FLBPluginFlushCtx
func FLBPluginFlushCtx(ctx, data unsafe.Pointer, length C.int, tag *C.char) int {
	inst := lookup(ctx)
	if inst == nil {
		return flbplugin.Error
	}
	return inst.Flush(unsafe.Slice((*byte)(data), int(length)), C.GoString(tag))
}

// FLBPluginExitCtx drains and closes one instance.
//
//export FLBPluginExitCtx
func FLBPluginExitCtx(ctx unsafe.Pointer) int {
	mu.Lock()
	inst := instances[uintptr(ctx)]
	delete(instances, uintptr(ctx))
	mu.Unlock()
	if inst != nil {
		if err := inst.Close(); err != nil {
			logger.Warn("exit with records still queued (sent after restart)", "err", err)
		}
	}
	return flbplugin.OK
}

// FLBPluginExit closes whatever instance is left.
//
//export FLBPluginExit
func FLBPluginExit() int {
	flbplugin.CloseAll()
	return flbplugin.OK
}

func main() {}
