// Package redistest starts a real redis-server for tests: on a free
// loopback port, with a temporary directory and no persistence, stopped
// when the test ends. It can be stopped and restarted on the same port to
// test outage recovery.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	Addr string
	port int
	dir  string
	args []string
	tls  bool
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs redis-server on a free port (extraArgs are appended to its
// command line, e.g. "--requirepass", "pw") and waits until it accepts
// connections. The server is stopped by t.Cleanup.
func Start(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not installed (apt-get install redis-server): %v", err)
	}
	dir := t.TempDir()
	// The port is free when chosen but another process may take it before
	// redis-server binds; try a few ports before giving up.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		s := &Server{t: t, port: port, dir: dir, args: extraArgs, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("redis-server: %v", lastErr)
	return nil
}

// Restart starts the process again after Stop (same port, same dir).
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
}

// StartTLS runs redis-server accepting only TLS on its port, with the
// given PEM files; clients need not present a certificate.
func StartTLS(t testing.TB, certFile, keyFile, caFile string) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{t: t, port: port, dir: t.TempDir(), tls: true, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		args: []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "no"}}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() error {
	portArgs := []string{"--port", strconv.Itoa(s.port)}
	if s.tls {
		portArgs = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port)}
	}
	args := append(append(portArgs, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", ""), s.args...)
	s.cmd = exec.Command("redis-server", args...)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	// Our process says when it is ready; a PING alone could be answered by
	// another redis-server that owns the port.
	ready := make(chan struct{})
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "Ready to accept connections") {
				signalled = true
				close(ready)
			}
		}
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	select {
	case <-ready:
		return nil
	case <-s.done:
		s.cmd = nil
		return fmt.Errorf("exited during startup on port %d (port taken?)", s.port)
	case <-time.After(15 * time.Second):
		s.Stop()
		return fmt.Errorf("not ready on %s", s.Addr)
	}
}

// ping sends an inline PING and expects +PONG.
func (s *Server) ping() error {
	c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if reply := string(buf[:n]); reply != "+PONG\r\n" && !strings.HasPrefix(reply, "-NOAUTH") {
		return fmt.Errorf("unexpected reply %q", buf[:n])
	}
	return nil
}

// Stop kills the process and waits for it to exit; idempotent.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Errorf("redis-server pid %d did not exit", s.cmd.Process.Pid)
	}
	s.cmd = nil
}

// WaitReady polls until ctx ends or the server answers PING.
func (s *Server) WaitReady(ctx context.Context) error {
	for {
		if err := s.ping(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
