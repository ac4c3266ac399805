package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
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
	go func() {
		defer wg.Done()
		watchDir(ctx, a.opts.ConfigDir, fp, a.opts.WatchInterval, func() { a.requestReload("file change") })
	}()
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

// fingerprint hashes the names and contents of every *.yaml/*.yml in dir.
// Unreadable entries contribute their error text, so a permission change is
// noticed too.
func fingerprint(dir string) string {
	h := sha256.New()
	entries, err := os.ReadDir(dir)
	if err != nil {
		io.WriteString(h, "error:"+err.Error())
		return hex.EncodeToString(h.Sum(nil))
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		io.WriteString(h, n+"\x00")
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			io.WriteString(h, "error:"+err.Error())
			continue
		}
		_, _ = io.Copy(h, f)
		f.Close()
		io.WriteString(h, "\x00")
	}
	return hex.EncodeToString(h.Sum(nil))
}
