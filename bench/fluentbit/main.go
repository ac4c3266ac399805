// Command fluentbit is `make bench`'s log-shipping benchmark (run by
// bench/fluentbit/run.sh). It compares, on the same access log:
//
//   - flexgw's plugin inside a real Fluent Bit against Fluent Bit's native
//     splunk output: records per CPU-second of the output stage alone,
//     i.e. Fluent Bit's CPU minus a run with the null output (same tail
//     input and json parser) as the baseline;
//   - the in-process pipeline (no Fluent Bit): records per CPU-second of
//     a process that only reads the log and runs logpipe;
//   - duplicates while the receiver answers 503 to 30% of the requests at
//     random, for all three.
//
// The receiver is the HEC stand-in (exportertest), in this process, so
// its CPU is never counted. The machine is shared and noisy: configs run
// in alternating rounds and medians are printed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/logpipe"
	"github.com/flexgw/flexgw/logpipe/fluentbit/flbtest"
)

var (
	flbBin  = flag.String("fluent-bit", "", "Fluent Bit binary (empty: Fluent Bit parts not run)")
	plugin  = flag.String("plugin", "", "out_flexgw.so as make plugin builds it")
	before  = flag.String("plugin-before", "", "another build of the plugin (e.g. of an earlier commit), measured in the same rounds: before/after in one run")
	records = flag.Int("records", 150000, "records per throughput run (fewer: the plugin's share drowns in the baseline's noise)")
	dupRecs = flag.Int("dup-records", 20000, "records per run with 30% random 503s")
	rounds  = flag.Int("rounds", 3, "alternating rounds")
	child   = flag.String("pipeline-child", "", "internal: run the in-process pipeline on this log, send to -hec")
	hecURL  = flag.String("hec", "", "internal: HEC URL for -pipeline-child")
	only    = flag.String("only", "", "comma-separated configs to run (null, plugin, native, inprocess; default all); ratios need null, plugin and native")
	noDups  = flag.Bool("no-dups", false, "skip the runs with 503s (for profiling)")
	// The documented setup (docs/logging.md): Fluent Bit's storage holds
	// each chunk until the plugin delivered it, in a worker thread.
	pluginKeys = flag.String("plugin-keys", "Buffer fluentbit,Workers 1", "extra keys of the plugin's [OUTPUT], comma-separated \"Key Value\"")
	storage    = flag.String("storage", "filesystem", "the tail input's storage.type: filesystem (the documented setup: chunks survive a kill) or memory")
	beforeKeys = flag.String("before-keys", "", "extra keys of -plugin-before's [OUTPUT] (default: as -plugin-keys)")
)

const token = "bench-tok"

func main() {
	flag.Parse()
	if *child != "" {
		if err := runPipelineChild(*child, *hecURL); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench fluentbit:", err)
		os.Exit(1)
	}
}

func run() error {
	work, err := os.MkdirTemp("", "flexgw-bench-flb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	logPath := filepath.Join(work, "access.log")
	dupLog := filepath.Join(work, "dup.log")
	if err := os.WriteFile(logPath, flbtest.Lines("r", 0, *records, 620), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(dupLog, flbtest.Lines("d", 0, *dupRecs, 620), 0o600); err != nil {
		return err
	}
	fmt.Printf("access log: %d records of ~620 bytes; duplicates run: %d records, receiver answers 503 to 30%% at random\n", *records, *dupRecs)

	configs := []string{"inprocess"}
	if *flbBin != "" {
		configs = []string{"null", "plugin", "native", "inprocess"}
		if *before != "" {
			configs = append(configs, "before")
		}
	} else {
		fmt.Println("fluent-bit: NOT RUN (no Fluent Bit: set FLUENT_BIT; it has no Debian package) — only the in-process pipeline is measured")
	}
	if *only != "" {
		configs = strings.Split(*only, ",")
	}
	has := func(c string) bool { return slices.Contains(configs, c) }
	cpu := map[string][]float64{}
	outCPU := map[string][]float64{} // the output's threads alone
	for r := 0; r < *rounds; r++ {
		// Rotate the order each round so drift on the shared machine
		// does not always favour the same config.
		for i := range configs {
			c := configs[(i+r)%len(configs)]
			sec, err := measure(work, c, logPath, *records, false)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", c, r+1, err)
			}
			cpu[c] = append(cpu[c], sec.all)
			outCPU[c] = append(outCPU[c], sec.out)
		}
	}
	fmt.Printf("\n%-44s %12s %16s\n", "records per CPU-second (median of rounds)", "CPU s", "records/CPU-s")
	n := float64(*records)
	row := func(name string, sec float64) {
		fmt.Printf("%-44s %12.2f %16.0f\n", name, sec, n/sec)
	}
	if has("null") && has("plugin") && has("native") {
		null := median(cpu["null"])
		var pShare, nShare []float64
		for i := range cpu["null"] {
			pShare = append(pShare, cpu["plugin"][i]-cpu["null"][i])
			nShare = append(nShare, cpu["native"][i]-cpu["null"][i])
		}
		row("fluent-bit, null output (baseline)", null)
		row("fluent-bit + flexgw plugin (whole process)", median(cpu["plugin"]))
		row("fluent-bit + native splunk (whole process)", median(cpu["native"]))
		ps, ns := median(pShare), median(nShare)
		row("  flexgw plugin's share (minus null)", ps)
		row("  native splunk output's share (minus null)", ns)
		var ratios []float64
		for i := range pShare {
			if nShare[i] > 0 {
				ratios = append(ratios, pShare[i]/nShare[i])
			}
		}
		verdict := "MET"
		if median(ratios) > 0.5 {
			verdict = "NOT MET"
		}
		fmt.Printf("plugin output-stage CPU / native output-stage CPU: %.2fx (median of per-round ratios %v; target <= 0.5x: %s)\n",
			median(ratios), fmtList(ratios), verdict)
		// Corroboration without the baseline's noise: the CPU of the
		// output's own threads (see outputThreadsCPU).
		var tRatios []float64
		for i := range cpu["null"] {
			if outCPU["native"][i] > 0 {
				tRatios = append(tRatios, outCPU["plugin"][i]/outCPU["native"][i])
			}
		}
		row("  flexgw plugin's threads (worker + Go runtime)", median(outCPU["plugin"]))
		row("  native splunk output's worker threads", median(outCPU["native"]))
		fmt.Printf("plugin output threads' CPU / native's: %.2fx (per round %v)\n", median(tRatios), fmtList(tRatios))
		if has("before") {
			var bShare, bRatios []float64
			for i := range cpu["null"] {
				bShare = append(bShare, cpu["before"][i]-cpu["null"][i])
				if nShare[i] > 0 {
					bRatios = append(bRatios, bShare[i]/nShare[i])
				}
			}
			row("  -plugin-before's share (minus null)", median(bShare))
			fmt.Printf("-plugin-before output-stage CPU / native's: %.2fx (per round %v)\n", median(bRatios), fmtList(bRatios))
		}
	}
	for _, c := range []string{"null", "plugin", "native"} {
		if has(c) && !(has("null") && has("plugin") && has("native")) {
			row("fluent-bit, "+c+" (whole process)", median(cpu[c]))
		}
	}
	if has("inprocess") {
		row("in-process pipeline (logpipe, no Fluent Bit)", median(cpu["inprocess"]))
	}
	if *noDups {
		return nil
	}

	fmt.Printf("\n%-44s %10s %10s %10s\n", "duplicates under 30% random 503s", "records", "dups", "dup %")
	for _, c := range configs {
		if c == "null" || c == "before" {
			continue
		}
		if _, err := measure(work, c, dupLog, *dupRecs, true); err != nil {
			return fmt.Errorf("%s with 503s: %w", c, err)
		}
	}
	return nil
}

func fmtList(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// random503 answers 503 to 30% of requests.
func random503() func(int) exportertest.Fault {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	return func(int) exportertest.Fault {
		mu.Lock()
		defer mu.Unlock()
		if r.Float64() < 0.3 {
			return exportertest.Fault{Status: 503}
		}
		return exportertest.Fault{}
	}
}

// measure runs one config over logPath until the receiver has all n
// records and returns the CPU seconds of the process doing the work (and
// of its output threads).
// With faults it prints the duplicates instead.
func measure(work, config, logPath string, n int, faults bool) (cpuFigures, error) {
	dir, err := os.MkdirTemp(work, config+"-")
	if err != nil {
		return cpuFigures{}, err
	}
	defer os.RemoveAll(dir)
	hec := exportertest.NewHEC(token)
	defer hec.Close()
	// Fluent Bit's native output sends a whole chunk (~2 MB) per request;
	// an on-premises HEC takes that (max_content_length), so the stand-in
	// does too.
	hec.MaxContentLength = 64 << 20
	if faults {
		hec.SetFault(random503())
	}
	start := time.Now()
	var sec cpuFigures
	if config == "inprocess" {
		cmd := exec.Command(os.Args[0], "-pipeline-child", logPath, "-hec", hec.URL)
		cmd.Env = append(os.Environ(), "BENCH_QUEUE="+filepath.Join(dir, "q"))
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return cpuFigures{}, fmt.Errorf("pipeline child: %w", err)
		}
		if !hec.WaitUnique(n, time.Minute) {
			return cpuFigures{}, fmt.Errorf("in-process pipeline delivered %d of %d", hec.Unique(), n)
		}
		u := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		sec.all = tv(u.Utime) + tv(u.Stime)
	} else {
		sec, err = runFluentBit(dir, config, logPath, hec, n)
		if err != nil {
			return cpuFigures{}, err
		}
	}
	if faults {
		dups := 0
		for _, c := range hec.Counts() {
			dups += c - 1
		}
		name := map[string]string{"plugin": "fluent-bit + flexgw plugin", "native": "fluent-bit + native splunk", "inprocess": "in-process pipeline"}[config]
		fmt.Printf("%-44s %10d %10d %9.2f%%   (%d requests, %.0fs)\n", name, n, dups, 100*float64(dups)/float64(n), hec.Requests(), time.Since(start).Seconds())
	}
	return sec, nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// runFluentBit runs fluent-bit with the tail input and a json parser into
// config's output and returns its CPU seconds once all n records are out.
func runFluentBit(dir, config, logPath string, hec *exportertest.HEC, n int) (cpuFigures, error) {
	u, _ := url.Parse(hec.URL)
	port := freePort()
	parsers := filepath.Join(dir, "parsers.conf")
	if err := os.WriteFile(parsers, []byte("[PARSER]\n    Name json\n    Format json\n"), 0o600); err != nil {
		return cpuFigures{}, err
	}
	var out string
	switch config {
	case "null":
		out = "    Name null\n    Match *\n"
	case "plugin", "before":
		so := *plugin
		if config == "before" {
			so = *before
		}
		plugins := filepath.Join(dir, "plugins.conf")
		if err := os.WriteFile(plugins, []byte("[PLUGINS]\n    Path "+so+"\n"), 0o600); err != nil {
			return cpuFigures{}, err
		}
		out = fmt.Sprintf("    Name flexgw\n    Match *\n    Retry_Limit False\n    Exporter splunk\n    Endpoint %s\n    Token %s\n    Queue_Dir %s\n    Flush_Interval 200ms\n",
			hec.URL, token, filepath.Join(dir, "q"))
		keys := *pluginKeys
		if config == "before" && *beforeKeys != "" {
			keys = *beforeKeys
		}
		for _, kv := range strings.Split(keys, ",") {
			if kv = strings.TrimSpace(kv); kv != "" {
				out += "    " + kv + "\n"
			}
		}
	case "native":
		out = fmt.Sprintf("    Name splunk\n    Match *\n    Retry_Limit False\n    Host %s\n    Port %s\n    TLS Off\n    Splunk_Token %s\n    Compress gzip\n",
			u.Hostname(), u.Port(), token)
	}
	conf := fmt.Sprintf(`[SERVICE]
    Flush            1
    Log_Level        warn
    Parsers_File     %s
    Plugins_File     %s
    HTTP_Server      On
    HTTP_Listen      127.0.0.1
    HTTP_Port        %d
    scheduler.base   1
    scheduler.cap    5
%s
[INPUT]
    Name            tail
    Path            %s
    Read_from_Head  true
    Parser          json
    Tag             access
    Buffer_Max_Size 1M
%s
[OUTPUT]
%s`, parsers, filepath.Join(dir, "plugins.conf"), port, serviceStorage(dir), logPath, inputStorage(), out)
	if config != "plugin" && config != "before" {
		conf = strings.Replace(conf, "    Plugins_File     "+filepath.Join(dir, "plugins.conf")+"\n", "", 1)
	}
	confPath := filepath.Join(dir, "fluent-bit.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return cpuFigures{}, err
	}
	logf, err := os.Create(filepath.Join(dir, "fluent-bit.log"))
	if err != nil {
		return cpuFigures{}, err
	}
	defer logf.Close()
	cmd := exec.Command(*flbBin, "-c", confPath)
	if dir := os.Getenv("BENCH_PERF"); dir != "" {
		// Profiling: perf records fluent-bit (its CPU figure is then
		// perf's own, so not comparable).
		cmd = exec.Command("perf", "record", "-F", "4000", "-g", "-o", filepath.Join(dir, config+".data"), "--", *flbBin, "-c", confPath)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return cpuFigures{}, err
	}
	defer func() {
		if os.Getenv("BENCH_PERF") != "" {
			_ = cmd.Process.Signal(syscall.SIGINT) // perf writes its file
		} else {
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		done := false
		if config == "null" {
			done = nullRecords(port) >= n
		} else {
			done = hec.Unique() >= n
		}
		if done {
			all, err := procCPU(cmd.Process.Pid)
			if err != nil {
				return cpuFigures{}, err
			}
			return cpuFigures{all: all, out: outputThreadsCPU(cmd.Process.Pid)}, nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			return cpuFigures{}, fmt.Errorf("%s: %d of %d records after 3 minutes; fluent-bit said:\n%s", config, hec.Unique(), n, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serviceStorage and inputStorage are the storage keys of -storage
// filesystem, as the rendered config (logpipe/fluentbit) sets them.
func serviceStorage(dir string) string {
	if *storage != "filesystem" {
		return ""
	}
	return "    storage.path     " + filepath.Join(dir, "storage") + "\n    storage.sync     normal\n    storage.checksum Off\n"
}

func inputStorage() string {
	if *storage != "filesystem" {
		return ""
	}
	return "    storage.type    filesystem\n"
}

// nullRecords reads the null output's processed-records counter from
// Fluent Bit's monitoring API.
func nullRecords(port int) int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/metrics", port))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var m struct {
		Output map[string]struct {
			ProcRecords int `json:"proc_records"`
		} `json:"output"`
	}
	b, _ := io.ReadAll(resp.Body)
	if json.Unmarshal(b, &m) != nil {
		return 0
	}
	total := 0
	for _, o := range m.Output {
		total += o.ProcRecords
	}
	return total
}

// cpuFigures are one run's CPU seconds: the whole process, and the
// threads of the output alone (outputThreadsCPU; 0 in process).
type cpuFigures struct{ all, out float64 }

// outputThreadsCPU is the CPU seconds of the output's own threads: Fluent
// Bit names an output's worker threads flb-out-<name>.<n>; the Go
// runtime's threads inside the plugin take the name of the thread that
// created them (a worker's, or "fluent-bit" when created at load by the
// main thread, which is the only other thread of that name). A second
// figure, without the null baseline's noise; it leaves out what an
// output costs Fluent Bit's engine thread, which the subtraction keeps.
func outputThreadsCPU(pid int) float64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	total := 0.0
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		comm := s[open+1 : end]
		tid, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
		if !strings.HasPrefix(comm, "flb-out-") && (comm != "fluent-bit" || tid == pid) {
			continue
		}
		f := strings.Fields(s[end+2:])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total += (ut + st) / 100
	}
	return total
}

// procCPU is a live process's user+system CPU seconds (all threads).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runPipelineChild runs logpipe in this process on the lines of path,
// sending to hec, and drains before exiting: its CPU is the pipeline's.
func runPipelineChild(path, hec string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	l := &ir.Logging{Outputs: []ir.LogOutput{{Name: "splunk", Type: "splunk",
		Parameters: map[string]string{"endpoint": hec, "splunk_token": token}}}, AccessLogOutputs: []string{"splunk"}}
	p, err := logpipe.New(l, logpipe.Options{QueueDir: os.Getenv("BENCH_QUEUE"), Batch: logpipe.BatchOptions{FlushInterval: 200 * time.Millisecond}})
	if err != nil {
		return err
	}
	if err := p.Start(context.Background()); err != nil {
		return err
	}
	for len(b) > 0 {
		i := min(len(b), 256<<10)
		if j := strings.LastIndexByte(string(b[:i]), '\n'); j >= 0 && i < len(b) {
			i = j + 1
		}
		if _, err := p.IngestJSONLines(b[:i]); err != nil {
			return err
		}
		b = b[i:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return p.Close(ctx)
}
