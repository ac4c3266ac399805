/*
 * A stand-in for Fluent Bit's Go proxy (src/proxy/go/go.c), enough to drive
 * an output plugin through its C ABI: dlopen the .so, call
 * FLBPluginRegister with a struct flb_plugin_proxy_def, FLBPluginInit with
 * a struct flbgo_output_plugin whose api->output_get_property answers from
 * a per-instance key table, FLBPluginFlushCtx with the remote_context the
 * plugin stored, then FLBPluginExitCtx and FLBPluginExit.
 *
 * usage: harness plugin.so CMD...
 *   new            start configuring a new instance
 *   Key=Value      add a config key to it
 *   init           FLBPluginInit the current instance
 *   use:N          make instance N current
 *   flush:FILE     FLBPluginFlushCtx FILE's bytes into the current instance
 *   exit           FLBPluginExitCtx every initialised instance
 * Each call prints "<call> <return code>" on stdout.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Layouts as in Fluent Bit's include/fluent-bit/flb_plugin_proxy.h and src/proxy/go/go.h. */
struct flb_plugin_proxy_def {
    int type;
    int proxy;
    int flags;
    char *name;
    char *description;
};

struct flb_api {
    char *(*output_get_property)(char *, void *);
    char *_;
};

struct flb_plugin_proxy_context {
    void *remote_context;
};

struct flbgo_output_plugin {
    void *_;
    struct flb_api *api;
    void *o_ins;
    struct flb_plugin_proxy_context *context;
};

#define MAXKEYS 64
#define MAXINST 8

struct instance {
    int nkeys;
    char *keys[MAXKEYS];
    char *vals[MAXKEYS];
    struct flbgo_output_plugin plugin;
    struct flb_plugin_proxy_context ctx;
    int inited;
};

static struct instance inst[MAXINST];

/* Fluent Bit matches property names case-insensitively and returns NULL
 * for an unset key; the string stays owned by Fluent Bit. */
static char *get_property(char *key, void *o_ins) {
    struct instance *in = o_ins;
    for (int i = 0; i < in->nkeys; i++) {
        if (strcasecmp(in->keys[i], key) == 0) {
            return in->vals[i];
        }
    }
    return NULL;
}

static struct flb_api api = {get_property, NULL};

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: harness plugin.so CMD...\n");
        return 2;
    }
    void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    int (*reg)(void *) = dlsym(so, "FLBPluginRegister");
    int (*init)(void *) = dlsym(so, "FLBPluginInit");
    int (*flush_ctx)(void *, void *, int, char *) = dlsym(so, "FLBPluginFlushCtx");
    int (*exit_ctx)(void *) = dlsym(so, "FLBPluginExitCtx");
    int (*exit_all)(void) = dlsym(so, "FLBPluginExit");
    if (!reg || !init || !flush_ctx || !exit_ctx || !exit_all) {
        fprintf(stderr, "missing symbol\n");
        return 1;
    }
    struct flb_plugin_proxy_def def;
    memset(&def, 0, sizeof(def));
    int ret = reg(&def);
    printf("register %d type=%d proxy=%d name=%s\n", ret, def.type, def.proxy, def.name ? def.name : "(null)");
    fflush(stdout);

    int n = -1, cur = -1;
    for (int a = 2; a < argc; a++) {
        char *arg = argv[a];
        if (strcmp(arg, "new") == 0) {
            if (++n >= MAXINST) return 2;
            cur = n;
            memset(&inst[cur], 0, sizeof(inst[cur]));
        } else if (strcmp(arg, "init") == 0) {
            struct instance *in = &inst[cur];
            in->plugin.api = &api;
            in->plugin.o_ins = in;
            in->plugin.context = &in->ctx;
            ret = init(&in->plugin);
            in->inited = ret == 1;
            printf("init %d\n", ret);
        } else if (strncmp(arg, "use:", 4) == 0) {
            cur = atoi(arg + 4);
        } else if (strncmp(arg, "flush:", 6) == 0) {
            FILE *f = fopen(arg + 6, "rb");
            if (!f) {
                perror(arg + 6);
                return 1;
            }
            fseek(f, 0, SEEK_END);
            long size = ftell(f);
            fseek(f, 0, SEEK_SET);
            char *buf = malloc(size ? size : 1);
            if (fread(buf, 1, size, f) != (size_t)size) return 1;
            fclose(f);
            ret = flush_ctx(inst[cur].ctx.remote_context, buf, (int)size, "envoy.access");
            free(buf);
            printf("flush %d\n", ret);
        } else if (strcmp(arg, "exit") == 0) {
            for (int i = 0; i <= n; i++) {
                if (inst[i].inited) {
                    printf("exit %d\n", exit_ctx(inst[i].ctx.remote_context));
                }
            }
            printf("exitall %d\n", exit_all());
        } else if (strchr(arg, '=')) {
            struct instance *in = &inst[cur];
            char *eq = strchr(arg, '=');
            *eq = 0;
            in->keys[in->nkeys] = arg;
            in->vals[in->nkeys] = eq + 1;
            in->nkeys++;
        } else {
            fprintf(stderr, "unknown command %s\n", arg);
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}
