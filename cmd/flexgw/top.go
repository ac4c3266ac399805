package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/flexgw/flexgw/tui"
)

func cmdTop(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o tui.Options
	fs.StringVar(&o.AdminURL, "admin", tui.DefaultAdminURL, "admin API of the gateway to watch")
	fs.StringVar(&o.Token, "token", os.Getenv("FLEXGW_ADMIN_TOKEN"), "bearer token for the admin API (default $FLEXGW_ADMIN_TOKEN)")
	fs.DurationVar(&o.Refresh, "refresh", time.Second, "refresh interval")
	fs.BoolVar(&o.Once, "once", false, "print one frame as plain text and exit")
	fs.BoolVar(&o.Plain, "plain", false, "plain text frames instead of the full-screen UI")
	fs.IntVar(&o.Width, "width", 0, "frame width for --once and --plain (default: terminal width)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.Out = stdout
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := tui.Run(ctx, o); err != nil {
		fmt.Fprintln(stderr, "flexgw top:", err)
		return 1
	}
	return 0
}
