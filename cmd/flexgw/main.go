// Command flexgw is the gateway's one binary: run, validate, top, status,
// config dump, envoy bootstrap, version, completion. It only maps flags
// onto the packages that do the work; the commands and their flags are
// declared once in commands.go (internal/cli derives usage, completion and
// the man page from them).
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-v") {
		args = []string{"version"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return app().Run(ctx, args, stdout, stderr)
}
