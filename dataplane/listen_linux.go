package dataplane

import (
	"syscall"
)

// deferAccept asks the kernel to hand a client connection to accept only
// once its first bytes arrived (TCP_DEFER_ACCEPT; nginx's `listen ...
// deferred`). HTTP, TLS and h2c clients all speak first, so the first read
// of an accepted connection finds its request instead of failing with
// EAGAIN and parking on the poller: on connection-per-request load that is
// one system call and one goroutine wake-up less per connection. A client
// that sends nothing is kept in the kernel's queue for about a second (one
// SYN-ACK retransmission) and then accepted anyway, so the header timeout
// still closes it.
func deferAccept(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
