package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/flexgw/flexgw/agent"
	"github.com/flexgw/flexgw/config"
	"github.com/flexgw/flexgw/envoy"
	"github.com/flexgw/flexgw/internal/adminapi"
	"github.com/flexgw/flexgw/internal/cli"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/kube"
	"github.com/flexgw/flexgw/tui"
)

// app declares every command; completion and man read the same list.
func app() *cli.App {
	a := &cli.App{Name: "flexgw", Short: "an observability-first API gateway (Flex Gateway Local Mode configs)"}
	a.Commands = []*cli.Command{
		runCommand(),
		validateCommand(),
		topCommand(),
		statusCommand(),
		configDumpCommand(),
		envoyBootstrapCommand(),
		versionCommand(),
		{
			Name: "completion", Args: "SHELL", MinArgs: 1, MaxArgs: 1,
			Short: "print the shell completion script (bash, zsh or fish)",
			Long: "bash: source <(flexgw completion bash)\n" +
				"zsh: eval \"$(flexgw completion zsh)\" in ~/.zshrc\n" +
				"fish: flexgw completion fish | source",
			Setup: func(fs *flag.FlagSet) cli.Runner {
				return func(_ context.Context, args []string, stdout, _ io.Writer) error {
					return a.Completion(stdout, args[0])
				}
			},
		},
		{
			Name: "man", Short: "print the man page (roff)", Hidden: true,
			Setup: func(fs *flag.FlagSet) cli.Runner {
				return func(_ context.Context, _ []string, stdout, _ io.Writer) error {
					a.Man(stdout, version)
					return nil
				}
			},
		},
	}
	return a
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Short: "serve the APIs declared in a config directory",
		Long: "Compiles every *.yaml file of --config, serves the APIs with the built-in data plane or Envoy, " +
			"and applies changes to the directory (or a SIGHUP) without a restart; a file with an error is " +
			"reported and the last good configuration keeps serving. SIGTERM drains in-flight requests.",
		Setup: func(fs *flag.FlagSet) cli.Runner {
			var o agent.Options
			fs.StringVar(&o.ConfigDir, "config", "/etc/flexgw/conf.d", "`DIR` of Flex Gateway Local Mode YAML files")
			fs.StringVar(&o.AdminAddr, "admin", envOr("FLEXGW_ADMIN", "127.0.0.1:9180"), "admin API `ADDRESS` (/ready, /live, /metrics, /api/v1/...) (default $FLEXGW_ADMIN, else 127.0.0.1:9180)")
			fs.StringVar(&o.AdminToken, "admin-token", os.Getenv("FLEXGW_ADMIN_TOKEN"), "bearer `TOKEN` required by the admin API except /live and /ready (default $FLEXGW_ADMIN_TOKEN); required when --admin is not a loopback address")
			fs.BoolVar(&o.AdminInsecure, "admin-insecure", false, "allow a non-loopback --admin without --admin-token (only where the network already restricts access)")
			adminHosts := fs.String("admin-hosts", os.Getenv("FLEXGW_ADMIN_HOSTS"), "comma-separated extra `NAMES` accepted in the admin API's Host header, e.g. the name Prometheus scrapes (default $FLEXGW_ADMIN_HOSTS)")
			fs.StringVar(&o.AccessLog, "access-log", "-", "access log destination: a file `PATH`, - for stdout, off for none")
			fs.DurationVar(&o.DrainTimeout, "drain-timeout", 15*time.Second, "how long SIGTERM waits for in-flight requests")
			fs.StringVar(&o.GatewayID, "gateway-id", "", "gateway `ID` in logs and metrics (default: hostname)")
			dataplane := &cli.Enum{Values: []string{"auto", "builtin", "envoy", "xds"}, Value: "auto"}
			fs.Var(dataplane, "dataplane", "data `PLANE`: auto, builtin, envoy or xds")
			fs.StringVar(&o.EnvoyPath, "envoy-path", "", "envoy binary to supervise, a `PATH` (default: envoy on $PATH)")
			fs.StringVar(&o.FluentBitPlugin, "fluent-bit-plugin", "/usr/lib/flexgw/out_flexgw.so", "Fluent Bit output plugin `PATH`; used with --dataplane envoy when fluent-bit is on $PATH")
			fs.StringVar(&o.EnvoyAdmin, "envoy-admin", "127.0.0.1:9901", "admin `ADDRESS` of the supervised Envoy")
			fs.StringVar(&o.XDSAddress, "xds-address", "127.0.0.1:18000", "ADS gRPC `ADDRESS` (host:port or unix socket path)")
			ebpf := &cli.Enum{Values: []string{"auto", "on", "off"}, Value: "auto"}
			fs.Var(ebpf, "ebpf", "kernel latency `PROBE`: auto, on or off")
			fs.StringVar(&o.StateDir, "state-dir", "/var/lib/flexgw", "`DIR` for durable log queues")
			fs.DurationVar(&o.WatchInterval, "watch-interval", time.Second, "how often the config directory is checked for changes")
			fs.Float64Var(&o.LogSample.Rate, "log-sample-rate", 0, "`FRACTION` of ordinary access-log records exported (0 = all); 5xx, policy denials and slow requests are always kept")
			fs.DurationVar(&o.LogSample.SlowerThan, "log-sample-slower-than", 0, "with --log-sample-rate: always keep requests at least this slow")
			redactHeaders := fs.String("log-redact-headers", "", "comma-separated `HEADERS` redacted before export, besides Authorization, Cookie, Set-Cookie, Proxy-Authorization")
			redactFields := fs.String("log-redact-fields", "", "comma-separated access-log `FIELDS` redacted before export")
			redactQuery := fs.String("log-redact-query", "", "comma-separated query `PARAMS` redacted inside paths before export")
			labels := fs.String("log-labels", "", "comma-separated key=value `LABELS` added to every exported record")
			escapedSlashes := &cli.Enum{Values: []string{"reject", "unescape-redirect", "unescape-forward", "keep"}, Value: "reject"}
			fs.Var(escapedSlashes, "escaped-slashes", "what %2F and %5C in request paths do: reject (400), unescape-redirect (307), unescape-forward or keep")
			logLevel := &cli.Enum{Values: []string{"debug", "info", "warn", "error"}, Value: "info"}
			fs.Var(logLevel, "log-level", "runtime log `LEVEL`: debug, info, warn, error")
			logFormat := &cli.Enum{Values: []string{"text", "json"}, Value: "text"}
			fs.Var(logFormat, "log-format", "runtime log `FORMAT`: text or json")
			var ko kube.Options
			kubernetes := fs.Bool("kubernetes", false, "read the configuration from the Kubernetes API (Flex CRDs, Ingress, Gateway API) instead of --config")
			fs.StringVar(&ko.Kubeconfig, "kubeconfig", "", "with --kubernetes: kubeconfig `FILE` (default: the in-cluster config)")
			fs.StringVar(&ko.Namespace, "namespace", "", "with --kubernetes: watch one `NAMESPACE` (default: all)")
			fs.StringVar(&ko.Selector, "selector", "", "with --kubernetes: label `SELECTOR` the Flex resources must match")
			fs.StringVar(&ko.IngressAddress, "ingress-address", "http://0.0.0.0:8080", "with --kubernetes: `ADDRESS` Ingresses of class flexgw are served on; its host is where Gateway listeners bind")
			fs.StringVar(&ko.IngressTLSAddress, "ingress-tls-address", "", "with --kubernetes: https://HOST:PORT `ADDRESS` Ingresses with spec.tls are also served on, with their Secrets' certificates (default: none)")
			fs.StringVar(&ko.PublishAddress, "publish-address", "", "with --kubernetes: `IP` written into Ingress and Gateway status")
			return func(ctx context.Context, _ []string, _, stderr io.Writer) error {
				o.DataPlane, o.EBPF = dataplane.Value, ebpf.Value
				o.Logger = newLogger(stderr, logLevel.Value, logFormat.Value)
				o.Version, o.Commit = version, commit
				o.AdminHosts = splitList(*adminHosts)
				o.LogRedact.Headers, o.LogRedact.Fields, o.LogRedact.QueryParams = splitList(*redactHeaders), splitList(*redactFields), splitList(*redactQuery)
				var err error
				if o.LogLabels, err = parseLabels(*labels); err != nil {
					return &cli.UsageError{Msg: "--log-labels: " + err.Error()}
				}
				if o.EscapedSlashes, err = ir.ParseEscapedSlashes(escapedSlashes.Value); err != nil {
					return &cli.UsageError{Msg: "--escaped-slashes: " + err.Error()}
				}
				if o.LogSample.Rate < 0 || o.LogSample.Rate > 1 {
					return &cli.UsageError{Msg: "--log-sample-rate: must be between 0 and 1"}
				}
				if *kubernetes {
					ko.Logger, ko.Identity = o.Logger, o.GatewayID
					if u, err := url.Parse(ko.IngressAddress); err == nil && u.Hostname() != "" {
						ko.GatewayHost = u.Hostname()
					}
					src, err := kube.New(ctx, ko)
					if err != nil {
						return err
					}
					defer src.Close()
					o.Source = src
				}
				return agent.Run(ctx, o)
			}
		},
	}
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // an Enum: always one of the levels
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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

// validateResult is validate's -o json document.
type validateResult struct {
	Dir     string   `json:"dir"`
	Valid   bool     `json:"valid"`
	Summary string   `json:"summary,omitempty"`
	Errors  []string `json:"errors,omitempty"`
	// Warnings are settings that are valid but likely not what was meant
	// (a client-controlled header read as the client address).
	Warnings []string `json:"warnings,omitempty"`
}

func validateCommand() *cli.Command {
	return &cli.Command{
		Name: "validate", Args: "DIR", MinArgs: 1, MaxArgs: 1,
		Short:   "check a config directory and exit",
		Long:    "Compiles DIR exactly as run would. Valid: a summary on stdout, exit 0. Invalid: one line per problem (FILE:LINE: Kind/name: field: reason) on stderr, exit 1.",
		Aliases: map[string]string{"o": "output"},
		Setup: func(fs *flag.FlagSet) cli.Runner {
			out := cli.OutputFlag(fs)
			return func(_ context.Context, args []string, stdout, stderr io.Writer) error {
				dir := args[0]
				res := validateResult{Dir: dir}
				snap, err := agent.Compile(dir, 1)
				if err != nil {
					var list config.ErrorList
					if errors.As(err, &list) {
						for _, e := range list {
							res.Errors = append(res.Errors, e.Error())
						}
					} else {
						res.Errors = []string{err.Error()}
					}
				} else {
					res.Valid, res.Summary, res.Warnings = true, ir.Summary(snap), snap.Warnings
					if len(snap.APIs()) == 0 {
						// Valid: a fresh install's conf.d is empty, and `run` serves it.
						res.Summary = "no APIs configured (" + res.Summary + ")"
					}
				}
				if out.Value == "json" {
					if err := writeJSON(stdout, res); err != nil {
						return err
					}
				} else if res.Valid {
					fmt.Fprintf(stdout, "%s: valid: %s\n", dir, res.Summary)
					for _, w := range res.Warnings {
						fmt.Fprintln(stderr, "warning: "+w)
					}
				} else {
					for _, e := range res.Errors {
						fmt.Fprintln(stderr, e)
					}
				}
				if !res.Valid {
					return &cli.ExitError{Code: 1}
				}
				return nil
			}
		},
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// adminFlags registers --admin and --token, shared by the commands that
// read a running gateway.
func adminFlags(fs *flag.FlagSet) (adminURL, token *string) {
	adminURL = fs.String("admin", envOr("FLEXGW_ADMIN", tui.DefaultAdminURL), "admin API `URL` of the gateway (default $FLEXGW_ADMIN, as run reads it, else "+tui.DefaultAdminURL+")")
	token = fs.String("token", os.Getenv("FLEXGW_ADMIN_TOKEN"), "bearer `TOKEN` for the admin API (default $FLEXGW_ADMIN_TOKEN)")
	return adminURL, token
}

func topCommand() *cli.Command {
	return &cli.Command{
		Name:    "top",
		Short:   "live terminal dashboard of a running gateway",
		Long:    "Shows requests, latency, upstreams, the kernel probe and the log pipeline of the gateway at --admin. --once prints one frame (or, with -o json, the /api/v1/top document) and exits.",
		Aliases: map[string]string{"o": "output"},
		Setup: func(fs *flag.FlagSet) cli.Runner {
			var o tui.Options
			adminURL, token := adminFlags(fs)
			fs.DurationVar(&o.Refresh, "refresh", time.Second, "refresh interval")
			fs.BoolVar(&o.Once, "once", false, "print one frame and exit")
			fs.BoolVar(&o.Plain, "plain", false, "plain text frames instead of the full-screen UI")
			fs.IntVar(&o.Width, "width", 0, "frame `COLUMNS` for --once and --plain (default: terminal width)")
			out := cli.OutputFlag(fs)
			return func(ctx context.Context, _ []string, stdout, _ io.Writer) error {
				if out.Value == "json" && !o.Once {
					return &cli.UsageError{Msg: "-o json needs --once"}
				}
				c, err := adminapi.New(*adminURL, *token)
				if err != nil {
					return &cli.UsageError{Msg: err.Error()}
				}
				// Something that is not flexgw would give an empty frame.
				if _, err := c.Identify(ctx); err != nil {
					return err
				}
				if out.Value == "json" {
					return printJSON(ctx, c, "/api/v1/top", stdout)
				}
				o.AdminURL, o.Token, o.Out = c.URL(), *token, stdout
				return tui.Run(ctx, o)
			}
		},
	}
}

// printJSON copies an admin API document to w, indented.
func printJSON(ctx context.Context, c *adminapi.Client, path string, w io.Writer) error {
	body, err := c.Get(ctx, path)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return writeJSON(w, v)
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:    "status",
		Short:   "show a running gateway's build, snapshot and last reload",
		Long:    "Reads /api/v1/status of the gateway at --admin. Exit 1 when it cannot be reached or is not flexgw.",
		Aliases: map[string]string{"o": "output"},
		Setup: func(fs *flag.FlagSet) cli.Runner {
			adminURL, token := adminFlags(fs)
			out := cli.OutputFlag(fs)
			quiet := fs.Bool("ready", false, "print nothing; exit 0 only when the gateway is ready (container health checks)")
			return func(ctx context.Context, _ []string, stdout, _ io.Writer) error {
				c, err := adminapi.New(*adminURL, *token)
				if err != nil {
					return &cli.UsageError{Msg: err.Error()}
				}
				body, err := c.Identify(ctx)
				if err != nil {
					return err
				}
				var st agent.Status
				if err := json.Unmarshal(body, &st); err != nil {
					return fmt.Errorf("GET /api/v1/status: %w", err)
				}
				switch {
				case *quiet && (!st.Ready || st.Draining):
					return fmt.Errorf("gateway at %s is not ready", c.URL())
				case *quiet:
					return nil
				case out.Value == "json":
					return writeJSON(stdout, st)
				}
				printStatus(stdout, c.URL(), st)
				return nil
			}
		},
	}
}

func printStatus(w io.Writer, url string, st agent.Status) {
	yes := map[bool]string{true: "yes", false: "no"}
	row := func(k, v string) { fmt.Fprintf(w, "%-10s %s\n", k, v) }
	row("gateway", st.GatewayID+" ("+url+")")
	row("version", st.Version+" (commit "+st.Commit+")")
	dp := st.DataPlane
	if st.DataPlaneReason != "" {
		dp += " (" + st.DataPlaneReason + ")"
	}
	row("dataplane", dp)
	ready := yes[st.Ready]
	if st.Draining {
		ready += ", draining"
	}
	row("ready", ready)
	row("uptime", (time.Duration(st.UptimeSeconds) * time.Second).String())
	snap := fmt.Sprint(st.SnapshotVersion)
	if st.Summary != "" {
		snap += ": " + st.Summary
	}
	row("snapshot", snap)
	r := st.LastReload
	if r.Result != "" {
		line := r.Result
		if !r.Time.IsZero() {
			line += " at " + r.Time.Format(time.RFC3339)
		}
		if r.Reason != "" {
			line += " (" + r.Reason + ")"
		}
		row("reload", line)
		for _, e := range r.Errors {
			row("", e)
		}
		if len(r.Errors) == 0 && r.Error != "" {
			row("", r.Error)
		}
	}
}

func configDumpCommand() *cli.Command {
	return &cli.Command{
		Name:  "config dump",
		Short: "print the running gateway's compiled configuration (JSON)",
		Long:  "Reads /api/v1/config of the gateway at --admin: the snapshot it serves, secrets redacted.",
		Setup: func(fs *flag.FlagSet) cli.Runner {
			adminURL, token := adminFlags(fs)
			return func(ctx context.Context, _ []string, stdout, _ io.Writer) error {
				c, err := adminapi.New(*adminURL, *token)
				if err != nil {
					return &cli.UsageError{Msg: err.Error()}
				}
				if _, err := c.Identify(ctx); err != nil {
					return err
				}
				return printJSON(ctx, c, "/api/v1/config", stdout)
			}
		},
	}
}

func envoyBootstrapCommand() *cli.Command {
	return &cli.Command{
		Name:  "envoy bootstrap",
		Short: "print the Envoy bootstrap for this agent",
		Long:  "Prints the bootstrap (YAML) an Envoy started elsewhere (--dataplane xds) needs to take its configuration from this agent's ADS server.",
		Setup: func(fs *flag.FlagSet) cli.Runner {
			var o envoy.BootstrapOptions
			configDir := fs.String("config", "", "config `DIR` to validate first (optional)")
			fs.StringVar(&o.XDSAddress, "xds-address", "127.0.0.1:18000", "the agent's ADS `ADDRESS` (host:port or unix socket path)")
			fs.StringVar(&o.NodeID, "node-id", "", "Envoy node `ID` (default: hostname)")
			fs.StringVar(&o.Cluster, "cluster", "", "Envoy node `CLUSTER` (default: flexgw)")
			fs.StringVar(&o.AdminAddress, "envoy-admin", "", "Envoy admin `ADDRESS` (default: 127.0.0.1:9901)")
			fs.Uint64Var(&o.MaxHeapBytes, "max-heap-bytes", 0, "overload manager heap budget in `BYTES` (default: the bootstrap's)")
			fs.Uint64Var(&o.MaxDownstreamConnections, "max-connections", 0, "downstream connection `LIMIT` (default: the bootstrap's)")
			return func(_ context.Context, _ []string, stdout, _ io.Writer) error {
				if *configDir != "" {
					if _, err := agent.Compile(*configDir, 1); err != nil {
						return fmt.Errorf("%s: %w", *configDir, err)
					}
				}
				b, err := envoy.Bootstrap(o)
				if err != nil {
					return err
				}
				_, err = stdout.Write(b)
				return err
			}
		},
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name: "version", Short: "print the version and commit",
		Aliases: map[string]string{"o": "output"},
		Setup: func(fs *flag.FlagSet) cli.Runner {
			out := cli.OutputFlag(fs)
			return func(_ context.Context, _ []string, stdout, _ io.Writer) error {
				if out.Value == "json" {
					return writeJSON(stdout, map[string]string{"version": version, "commit": commit, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH})
				}
				fmt.Fprintf(stdout, "flexgw %s (commit %s)\n", version, commit)
				return nil
			}
		},
	}
}
