package xds

import (
	"context"
	"errors"
	"net"
)

// Name is the Runner name.
func (s *Server) Name() string { return "xds" }

// Start listens on addr (DefaultAddress when empty) and serves in the
// background until Close; the listen error, if any, is returned here.
func (s *Server) Start(ctx context.Context, addr string) error {
	if addr == "" {
		addr = DefaultAddress
	}
	lis, err := Listen(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	s.mu.Lock()
	if s.stop != nil {
		s.mu.Unlock()
		cancel()
		lis.Close()
		return errors.New("xds: already started")
	}
	s.stop, s.done, s.addr = cancel, done, lis.Addr()
	s.mu.Unlock()
	go func() { done <- s.ServeListener(ctx, lis) }()
	return nil
}

// Addr is the address Start listens on (nil before Start).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops serving and waits for it. Calling it again returns the
// first call's result.
func (s *Server) Close() error {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.mu.Unlock()
	if stop == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		stop()
		s.closeErr = <-done
	})
	return s.closeErr
}
