package dataplane

import (
	"net/http"
	"syscall"
	"testing"
)

// The data plane's listeners defer accept until a client's first bytes
// arrive, and a request sent right after connecting is served as before.
func TestListenerDefersAccept(t *testing.T) {
	up := echoUpstream(t, "a")
	g := startGateway(t, simple(t, up))
	g.dp.mu.Lock()
	var checked int
	for _, l := range g.dp.listeners {
		sc, ok := l.ln.(syscall.Conn)
		if !ok {
			t.Fatalf("listener %s is a %T", l.addr, l.ln)
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var gerr error
		if err := rc.Control(func(fd uintptr) {
			v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT)
		}); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		if v == 0 {
			t.Errorf("listener %s: TCP_DEFER_ACCEPT off", l.addr)
		}
		checked++
	}
	g.dp.mu.Unlock()
	if checked == 0 {
		t.Fatal("no listener")
	}
	if status, body := sendRaw(t, g.addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); status != http.StatusOK {
		t.Fatalf("status %d (%s)", status, body)
	}
}
