// Command flexgw is the gateway's one binary: run, validate, top, envoy,
// version. It only maps flags onto the packages that do the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/flexgw/flexgw/agent"
	"github.com/flexgw/flexgw/config"
	"github.com/flexgw/flexgw/ir"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

const usage = `flexgw: an observability-first API gateway (Flex Gateway Local Mode configs)

Usage:
  flexgw run --config DIR [flags]     serve the APIs declared in DIR
  flexgw validate DIR                 check a config directory and exit
  flexgw top [--admin URL]            live terminal dashboard of a running gateway
  flexgw envoy bootstrap [--config DIR]  print the Envoy bootstrap for this agent
  flexgw version                      print the version and commit

Run 'flexgw COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "top":
		return cmdTop(args[1:], stdout, stderr)
	case "envoy":
		return cmdEnvoy(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "flexgw %s (commit %s)\n", version, commit)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "flexgw: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: must be debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: must be text or json", format)
	}
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o agent.Options
	fs.StringVar(&o.ConfigDir, "config", "/etc/flexgw/conf.d", "directory of Flex Gateway Local Mode YAML files")
	fs.StringVar(&o.AdminAddr, "admin", envOr("FLEXGW_ADMIN", "127.0.0.1:9180"), "admin API address (/ready, /live, /metrics, /api/v1/...) (default $FLEXGW_ADMIN, else 127.0.0.1:9180)")
	fs.StringVar(&o.AdminToken, "admin-token", os.Getenv("FLEXGW_ADMIN_TOKEN"), "bearer token required by the admin API except /live and /ready (default $FLEXGW_ADMIN_TOKEN); required when --admin is not a loopback address")
	fs.BoolVar(&o.AdminInsecure, "admin-insecure", false, "allow a non-loopback --admin without --admin-token (only where the network already restricts access)")
	adminHosts := fs.String("admin-hosts", os.Getenv("FLEXGW_ADMIN_HOSTS"), "comma-separated extra names accepted in the admin API's Host header, e.g. the name Prometheus scrapes (default $FLEXGW_ADMIN_HOSTS)")
	fs.StringVar(&o.AccessLog, "access-log", "-", "access log destination: a file path, - for stdout, off for none")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 15*time.Second, "how long SIGTERM waits for in-flight requests")
	fs.StringVar(&o.GatewayID, "gateway-id", "", "gateway id in logs and metrics (default: hostname)")
	fs.StringVar(&o.DataPlane, "dataplane", "auto", "data plane: auto, builtin, envoy or xds")
	fs.StringVar(&o.EnvoyPath, "envoy-path", "", "envoy binary to supervise (default: envoy on PATH)")
	fs.StringVar(&o.FluentBitPlugin, "fluent-bit-plugin", "/usr/lib/flexgw/out_flexgw.so", "Fluent Bit output plugin; used with --dataplane envoy when fluent-bit is on PATH")
	fs.StringVar(&o.EnvoyAdmin, "envoy-admin", "127.0.0.1:9901", "admin address of the supervised Envoy")
	fs.StringVar(&o.XDSAddress, "xds-address", "127.0.0.1:18000", "ADS gRPC address (host:port or unix socket path)")
	fs.StringVar(&o.EBPF, "ebpf", "auto", "kernel latency probe: auto, on or off")
	fs.StringVar(&o.StateDir, "state-dir", "/var/lib/flexgw", "directory for durable log queues")
	fs.DurationVar(&o.WatchInterval, "watch-interval", time.Second, "how often the config directory is checked for changes")
	fs.Float64Var(&o.LogSample.Rate, "log-sample-rate", 0, "fraction of ordinary access-log records exported (0 = all); 5xx, policy denials and slow requests are always kept")
	fs.DurationVar(&o.LogSample.SlowerThan, "log-sample-slower-than", 0, "with --log-sample-rate: always keep requests at least this slow")
	redactHeaders := fs.String("log-redact-headers", "", "comma-separated headers redacted before export, besides Authorization, Cookie, Set-Cookie, Proxy-Authorization")
	redactFields := fs.String("log-redact-fields", "", "comma-separated access-log fields redacted before export")
	redactQuery := fs.String("log-redact-query", "", "comma-separated query parameters redacted inside paths before export")
	labels := fs.String("log-labels", "", "comma-separated key=value labels added to every exported record")
	logLevel := fs.String("log-level", "info", "runtime log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "runtime log format: text or json")
	escapedSlashes := fs.String("escaped-slashes", "reject", "what %2F and %5C in request paths do: reject (400), unescape-redirect (307), unescape-forward or keep")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "flexgw run:", err)
		return 2
	}
	o.Logger = logger
	o.Version, o.Commit = version, commit
	if o.EscapedSlashes, err = ir.ParseEscapedSlashes(*escapedSlashes); err != nil {
		fmt.Fprintln(stderr, "flexgw run: --escaped-slashes:", err)
		return 2
	}
	o.AdminHosts = splitList(*adminHosts)
	o.LogRedact.Headers, o.LogRedact.Fields, o.LogRedact.QueryParams = splitList(*redactHeaders), splitList(*redactFields), splitList(*redactQuery)
	if o.LogLabels, err = parseLabels(*labels); err != nil {
		fmt.Fprintln(stderr, "flexgw run: --log-labels:", err)
		return 2
	}
	if o.LogSample.Rate < 0 || o.LogSample.Rate > 1 {
		fmt.Fprintln(stderr, "flexgw run: --log-sample-rate: must be between 0 and 1")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := agent.Run(ctx, o); err != nil {
		fmt.Fprintln(stderr, "flexgw run:", err)
		return 1
	}
	return 0
}

// envOr returns the environment variable name, or def when it is unset or
// empty: the container images set flags this way, so `docker run -e`
// changes them without repeating the entrypoint.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range splitList(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%q: want key=value", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: flexgw validate DIR") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	dir := fs.Arg(0)
	snap, err := agent.Compile(dir, 1)
	if err != nil {
		var list config.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(stdout, e.Error())
			}
		} else {
			fmt.Fprintln(stdout, err.Error())
		}
		return 1
	}
	if len(snap.APIs()) == 0 {
		// Valid: a fresh install's conf.d is empty, and `run` serves it.
		fmt.Fprintf(stdout, "%s: valid: no APIs configured (%s)\n", dir, ir.Summary(snap))
		return 0
	}
	fmt.Fprintf(stdout, "%s: valid: %s\n", dir, ir.Summary(snap))
	return 0
}
