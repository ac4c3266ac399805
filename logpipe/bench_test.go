package logpipe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/exporters/exportertest"
	"github.com/flexgw/flexgw/exporters/newrelic"
	"github.com/flexgw/flexgw/exporters/splunk"
	"github.com/flexgw/flexgw/exporters/sumologic"
	"github.com/flexgw/flexgw/ir/irlog"
)

// encoder is the pure half of every exporter.
type encoder interface {
	Encode(events []exporters.Event, emit func(body []byte, n int) error) error
}

func benchEncoders(b *testing.B) map[string]encoder {
	s, err1 := splunk.New("s", map[string]string{"endpoint": "http://127.0.0.1:1", "splunk_token": "t", "event_index": "main"}, exporters.Settings{Hostname: "h"})
	n, err2 := newrelic.New("n", map[string]string{"endpoint": "http://127.0.0.1:1/log/v1", "api_key": "k"}, exporters.Settings{Hostname: "h"})
	u, err3 := sumologic.New("u", map[string]string{"url": "http://127.0.0.1:1/receiver/v1/http/X"}, exporters.Settings{Hostname: "h"})
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			b.Fatal(err)
		}
	}
	return map[string]encoder{"splunk": s, "newrelic": n, "sumologic": u}
}

func quietOptions(dir string) Options {
	return Options{GatewayID: "gw-1", Hostname: "host-1", QueueDir: dir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Queue:  QueueOptions{MaxBytes: 256 << 20}}
}

// BenchmarkLinesToBodies measures one core turning JSON access-log lines
// into compressed request bodies: decode, enrich, redact, queue encoding,
// exporter encoding, gzip. Durable-queue I/O is measured separately.
func BenchmarkLinesToBodies(b *testing.B) {
	const block = 1000
	input := bytes.Split(bytes.TrimSpace(lines(0, block)), []byte("\n"))
	p, err := New(nil, quietOptions(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	for name, enc := range benchEncoders(b) {
		b.Run(name, func(b *testing.B) {
			var z bytes.Buffer
			events := make([]exporters.Event, 0, block)
			var inBytes, outBytes int64
			b.ReportAllocs()
			startCPU(b)
			for i := 0; i < b.N; i++ {
				events = events[:0]
				for _, l := range input {
					e, err := DecodeJSON(l)
					if err != nil {
						b.Fatal(err)
					}
					item := p.process(&e)
					ev, _ := decodeItem(item)
					events = append(events, ev)
					inBytes += int64(len(l) + 1)
				}
				err := enc.Encode(events, func(body []byte, _ int) error {
					exporters.Gzip(&z, body)
					outBytes += int64(z.Len())
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*block)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.N*block)/cpu(b), "records/cpu-s")
			b.ReportMetric(float64(inBytes)/float64(outBytes), "compression")
		})
	}
}

// benchChunk is n access-log records as Fluent Bit's tail input with the
// json parser sends them: one map per record, keys in the line's order.
func benchChunk(b *testing.B, n int) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for i := 0; i < n; i++ {
		e, _ := DecodeJSON([]byte(line(i)))
		err := errors.Join(enc.EncodeArrayLen(2), enc.EncodeArrayLen(2), enc.EncodeInt(1700000000),
			enc.EncodeMapLen(0), enc.EncodeMapLen(len(e.Fields)))
		for _, f := range e.Fields {
			err = errors.Join(err, enc.EncodeString(f.Key))
			if f.Val[0] == '"' {
				err = errors.Join(err, enc.EncodeString(e.String(f.Key)))
			} else {
				err = errors.Join(err, enc.EncodeInt(e.Int(f.Key)))
			}
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return buf.Bytes()
}

// BenchmarkPluginFlush measures the plugin's flush path on one core: a
// Fluent Bit msgpack chunk decoded, processed and appended to the durable
// queue (what must finish before FLBPluginFlushCtx returns FLB_OK).
func BenchmarkPluginFlush(b *testing.B) {
	const block = 1000
	chunk := benchChunk(b, block)
	l := &irlog.Logging{Outputs: []irlog.LogOutput{{Name: "s", Type: "splunk", Parameters: map[string]string{"endpoint": "http://127.0.0.1:1", "splunk_token": "t"}}}}
	p, err := New(l, quietOptions(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	b.SetBytes(int64(len(chunk)))
	startCPU(b)
	for i := 0; i < b.N; i++ {
		if err := p.IngestMsgpack(chunk); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*block)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.N*block)/cpu(b), "records/cpu-s")
}

var cpuStart = map[*testing.B]float64{}

// startCPU and cpu measure process CPU seconds (user+sys) over the timed
// loop: on a shared machine wall time undercounts what one core does.
func startCPU(b *testing.B) {
	b.Helper()
	cpuStart[b] = cpuNow()
	b.ResetTimer()
}

func cpu(b *testing.B) float64 { return cpuNow() - cpuStart[b] }

func cpuNow() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// BenchmarkBacklogMemory ingests records while the aggregator answers 503
// and reports the Go heap after 100k and after all records: the backlog
// lives on disk, so the two stay close. Run with -benchtime=1x.
func BenchmarkBacklogMemory(b *testing.B) {
	const total = 1_000_000
	hec := exportertest.NewHEC("t")
	defer hec.Close()
	hec.SetFault(func(int) exportertest.Fault { return exportertest.Fault{Status: 503} })
	opts := quietOptions(b.TempDir())
	opts.Queue.MaxBytes = 4 << 30
	opts.Retry = RetryOptions{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}
	l := &irlog.Logging{Outputs: []irlog.LogOutput{{Name: "s", Type: "splunk", Parameters: map[string]string{"endpoint": hec.URL, "splunk_token": "t"}}}}
	p, err := New(l, opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = p.Close(ctx)
	}()
	heap := func() float64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapInuse) / (1 << 20)
	}
	var at100k float64
	for i := 0; i < total; i += 1000 {
		if _, err := p.IngestJSONLines(lines(i, i+1000)); err != nil {
			b.Fatal(err)
		}
		if i+1000 == 100_000 {
			at100k = heap()
		}
	}
	end := heap()
	st := p.Stats()[0]
	b.ReportMetric(at100k, "heapMB@100k")
	b.ReportMetric(end, "heapMB@1M")
	b.ReportMetric(float64(st.QueueBytes)/(1<<20), "queueMB")
	b.ReportMetric(float64(st.QueueDepth), "queued")
}
