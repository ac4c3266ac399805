package logpipe

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flexgw/flexgw/exporters/exportertest"
)

const crashEnv = "FLEXGW_LOGPIPE_CRASH_CHILD"

// TestCrashChild is the process TestCrashResume kills: it ingests records
// as fast as it can and prints how many were accepted into the queue.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		return // only meaningful as TestCrashResume's child
	}
	opts := testOptions(t, dir)
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	p, err := New(logging("hec", "splunk", map[string]string{"endpoint": os.Getenv("HEC_URL"), "splunk_token": "t"}), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i += 100 {
		if _, err := p.IngestJSONLines(lines(i, i+100)); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("accepted %d\n", i+100)
	}
}

// TestCrashResume SIGKILLs a process mid-stream and restarts the pipeline
// on its queue: every record the dead process had accepted arrives.
func TestCrashResume(t *testing.T) {
	hec := exportertest.NewHEC("t")
	defer hec.Close()
	// A slow aggregator, so the backlog is in the queue at the kill.
	hec.SetFault(func(int) exportertest.Fault { return exportertest.Fault{Delay: 20 * time.Millisecond} })
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir, "HEC_URL="+hec.URL)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	accepted := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "accepted ")); err == nil {
			accepted = n
		}
		if accepted >= 5000 && hec.Unique() > 0 {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if accepted < 5000 {
		t.Fatalf("child stopped after %d records", accepted)
	}
	before := hec.Unique()
	hec.SetFault(nil)
	mustStart(t, logging("hec", "splunk", map[string]string{"endpoint": hec.URL, "splunk_token": "t"}), testOptions(t, dir))
	if !hec.WaitUnique(accepted, 3*time.Minute) {
		t.Fatalf("%d of %d accepted records arrived", hec.Unique(), accepted)
	}
	counts := hec.Counts()
	for i := 0; i < accepted; i++ {
		if counts[fmt.Sprintf("req-%d", i)] == 0 {
			t.Fatalf("req-%d was accepted before the kill and never arrived", i)
		}
	}
	t.Logf("killed after %d accepted (%d delivered before the kill); after restart all arrived, %d received in total", accepted, before, len(hec.Events()))
}
