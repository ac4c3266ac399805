//go:build !linux

package dataplane

import "syscall"

// deferAccept is Linux's TCP_DEFER_ACCEPT (listen_linux.go); elsewhere
// connections are accepted at once.
func deferAccept(_, _ string, _ syscall.RawConn) error { return nil }
