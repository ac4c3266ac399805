package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/flexgw/flexgw/config"
)

// startWatch turns config file changes and SIGHUP into reload requests
// until the returned stop is called. fp is the fingerprint taken before the
// running snapshot was loaded.
func (a *Agent) startWatch(fp string) stopFunc {
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var wg sync.WaitGroup
	wg.Add(2)
	if src := a.opts.Source; src != nil {
		stopSource := src.Notify(func() { a.requestReload(src.Name() + " change") })
		go func() {
			defer wg.Done()
			<-ctx.Done()
			stopSource()
		}()
	} else {
		go func() {
			defer wg.Done()
			watchDir(ctx, a.opts.ConfigDir, fp, a.opts.WatchInterval, func() { a.requestReload("file change") })
		}()
	}
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.requestReload("SIGHUP")
			}
		}
	}()
	return func(context.Context) error {
		signal.Stop(hup)
		cancel()
		wg.Wait()
		return nil
	}
}

// watchDir calls onChange whenever the set of YAML files in dir or their
// contents change. It fingerprints file contents rather than relying on
// inotify so that editors that write-and-rename, Kubernetes ConfigMap symlink
// swaps and network filesystems all behave the same; a config dir is small,
// so hashing it every interval is cheap.
//
// A change is reported only once the fingerprint has been stable for one
// extra interval, so a file caught half-written is not loaded.
//
// last is the fingerprint taken before the running snapshot was loaded, so
// a change made while it was being compiled is not missed.
func watchDir(ctx context.Context, dir string, last string, interval time.Duration, onChange func()) {
	pending := ""
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp := fingerprint(dir)
		switch {
		case fp == last:
			pending = ""
		case fp != pending:
			pending = fp // wait one more tick for writers to finish
		default:
			last, pending = fp, ""
			onChange()
		}
	}
}

// fingerprint hashes the names and contents of the configuration files of
// dir, read by config.ReadDir's rules: a FIFO, a device or an oversized
// file is never read, so the watcher cannot block or hash without end.
// Entries that cannot be read contribute their error text, so a permission
// change or a link that breaks is noticed too.
func fingerprint(dir string) string {
	h := sha256.New()
	files, errs := config.ReadDir(dir)
	for _, f := range files {
		io.WriteString(h, f.Name+"\x00")
		h.Write(f.Data)
		io.WriteString(h, "\x00")
	}
	for _, e := range errs {
		io.WriteString(h, "error:"+e.Error()+"\x00")
	}
	return hex.EncodeToString(h.Sum(nil))
}
