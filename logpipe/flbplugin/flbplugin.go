// Package flbplugin is everything the Fluent Bit output plugin
// (cmd/flb-out-flexgw) does, minus cgo: reading the instance's config
// keys through a getter, running one logpipe Pipeline per instance with
// its own durable queue, and mapping a flush's outcome to Fluent Bit's
// return codes. Keeping it here lets it be tested without Fluent Bit.
package flbplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/ir/irlog"
	"github.com/flexgw/flexgw/logpipe"
	"github.com/flexgw/flexgw/logpipe/queue"
)

// Fluent Bit's flush and init return codes (flb_plugin.h).
const (
	Error = 0
	OK    = 1
	Retry = 2
)

// Name and Description are what the plugin registers.
const (
	Name        = logpipe.PluginName
	Description = "flexgw logpipe: Splunk HEC, New Relic, Sumo Logic with a durable queue"
)

// Getter returns a config key's value ("" when unset). In the plugin it is
// output.FLBPluginConfigKey; tests pass a map.
type Getter func(key string) string

// keyMap maps plugin keys to the exporter parameter they set, per exporter.
// Fluent Bit reserves Host and Port, so the endpoint is one URL.
var keyMap = map[string]map[string]string{
	"splunk": {
		"Endpoint": "endpoint", "Token": "splunk_token", "Index": "event_index", "Source": "event_source",
		"Sourcetype": "event_sourcetype", "Event_Host": "event_host", "Event_Field": "event_field",
		"Indexer_Ack": "indexer_ack", "Channel": "channel", "Ack_Timeout": "ack_timeout",
	},
	"newrelic": {"Endpoint": "endpoint", "Region": "region"},
	"sumologic": {
		"Endpoint": "url", "Source_Category": "source_category", "Source_Name": "source_name",
		"Source_Host": "source_host", "Fields": "fields",
	},
}

// canonical maps Flex's aliases to the exporter they use.
func canonical(typ string) string {
	switch typ {
	case "nrlogs":
		return "newrelic"
	case "http":
		return "sumologic"
	}
	return typ
}

// commonKeys apply to every exporter.
var commonKeys = map[string]string{"Compress": "compress", "TLS_Verify": "tls.verify"}

// TuneRuntime sizes the Go runtime that lives inside Fluent Bit, once, at
// registration: one P (GOMAXPROCS=1) unless the environment sets
// GOMAXPROCS. The plugin's work is a flush callback on Fluent Bit's
// engine thread and one sender per instance, mostly waiting on the
// network; with a P per core the runtime wakes and parks threads to hand
// each of them a P of its own, and that scheduling cost more CPU than the
// parallelism saved (issue 17's output-stage benchmark).
func TuneRuntime() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// Instance is one configured output of the plugin.
type Instance struct {
	// direct: Buffer fluentbit, chunks are delivered before Flush
	// returns OK (no durable queue of the plugin's own).
	direct bool
	name   string
	drain  time.Duration
	p      *logpipe.Pipeline
	log    *slog.Logger
}

var (
	mu        sync.Mutex
	instances = map[*Instance]bool{}
)

// New reads the instance's keys, opens its queue and starts its pipeline.
// Keys: Exporter (splunk | newrelic | sumologic), Endpoint, Token,
// Queue_Dir, Output_Name, the per-exporter keys of docs/logging.md, and
// Batch_Max_Records, Flush_Interval, Queue_Max_Bytes, Fsync, Gateway_ID,
// Buffer (queue, the default: a chunk is OK once in the plugin's durable
// queue; fluentbit: once delivered, Fluent Bit's storage holding it until
// then) and Retry_Window (Buffer fluentbit: how long a flush retries
// before handing the chunk back, default 5s).
func New(get Getter, log *slog.Logger) (*Instance, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	typ := strings.ToLower(get("Exporter"))
	if logpipe.ParamKeys(typ) == nil {
		return nil, fmt.Errorf("key Exporter: %q is not one of %s", typ, strings.Join(logpipe.Types(), ", "))
	}
	params := map[string]string{}
	// Param.<key> passes any exporter parameter through unchanged (the
	// agent's rendered config uses it); the friendly keys override.
	for _, k := range append(append([]string{}, logpipe.ParamKeys(typ)...), exporters.CommonKeys...) {
		if v := get("Param." + k); v != "" {
			params[k] = v
		}
	}
	for k, param := range keyMap[canonical(typ)] {
		if v := get(k); v != "" {
			params[param] = v
		}
	}
	for k, param := range commonKeys {
		if v := get(k); v != "" {
			params[param] = v
		}
	}
	if tok := get("Token"); tok != "" && canonical(typ) == "newrelic" {
		if strings.EqualFold(get("Key_Type"), "api") {
			params["api_key"] = tok
		} else {
			params["license_key"] = tok
		}
	}
	name := get("Output_Name")
	if name == "" {
		name = typ
	}
	var err error
	dir := get("Queue_Dir")
	if dir == "" {
		return nil, errors.New("key Queue_Dir is required (a directory for this instance's durable queue)")
	}
	opts := logpipe.Options{
		GatewayID: get("Gateway_ID"),
		QueueDir:  dir,
		Logger:    log.With("output", name),
		// Fluent Bit keeps a refused chunk and retries it: better than
		// dropping the oldest records when the queue is full.
		Queue: logpipe.QueueOptions{RejectWhenFull: true},
	}
	switch v := strings.ToLower(get("Buffer")); v {
	case "", "queue":
	case "fluentbit", "fluent-bit":
		opts.Direct = true
	default:
		return nil, fmt.Errorf("key Buffer: %q is not queue or fluentbit", v)
	}
	if v := get("Retry_Window"); v != "" {
		if opts.Retry.Window, err = time.ParseDuration(v); err != nil || opts.Retry.Window <= 0 {
			return nil, fmt.Errorf("key Retry_Window: %q is not a positive duration (e.g. 5s)", v)
		}
	}
	opts.Hostname, _ = os.Hostname()
	if v := get("Batch_Max_Records"); v != "" {
		if opts.Batch.MaxRecords, err = strconv.Atoi(v); err != nil || opts.Batch.MaxRecords <= 0 {
			return nil, fmt.Errorf("key Batch_Max_Records: %q is not a positive integer", v)
		}
	}
	if v := get("Flush_Interval"); v != "" {
		if opts.Batch.FlushInterval, err = time.ParseDuration(v); err != nil || opts.Batch.FlushInterval <= 0 {
			return nil, fmt.Errorf("key Flush_Interval: %q is not a positive duration (e.g. 1s)", v)
		}
	}
	if v := get("Queue_Max_Bytes"); v != "" {
		if opts.Queue.MaxBytes, err = strconv.ParseInt(v, 10, 64); err != nil || opts.Queue.MaxBytes <= 0 {
			return nil, fmt.Errorf("key Queue_Max_Bytes: %q is not a positive integer", v)
		}
	}
	if opts.Queue.Fsync, err = queue.ParseFsync(get("Fsync")); err != nil {
		return nil, fmt.Errorf("key Fsync: %w", err)
	}
	if v := get("Retry_Min"); v != "" {
		if opts.Retry.Min, err = time.ParseDuration(v); err != nil {
			return nil, fmt.Errorf("key Retry_Min: %w", err)
		}
	}
	l := &irlog.Logging{Outputs: []irlog.LogOutput{{Name: name, Type: typ, Parameters: params}}, AccessLogOutputs: []string{name}}
	p, err := logpipe.New(l, opts)
	if err != nil {
		return nil, err
	}
	if err := p.Start(context.Background()); err != nil {
		return nil, err
	}
	inst := &Instance{name: name, p: p, log: opts.Logger, drain: 5 * time.Second, direct: opts.Direct}
	if v := get("Drain_Timeout"); v != "" {
		if inst.drain, err = time.ParseDuration(v); err != nil {
			_ = p.Close(context.Background())
			return nil, fmt.Errorf("key Drain_Timeout: %w", err)
		}
	}
	mu.Lock()
	instances[inst] = true
	mu.Unlock()
	return inst, nil
}

// Flush hands a chunk to the pipeline: OK once it is in the durable queue,
// Retry when the queue is full or the disk failed (Fluent Bit keeps the
// chunk), Error for a chunk that can never decode.
//
// With Buffer fluentbit, OK means delivered: the chunk stays in Fluent
// Bit's storage until then, and Retry hands it back with what was
// confirmed of it remembered (logpipe.DeliverMsgpack).
func (i *Instance) Flush(data []byte, tag string) int {
	var err error
	if i.direct {
		err = i.p.DeliverMsgpack(data)
	} else {
		err = i.p.IngestMsgpack(data)
	}
	switch {
	case err == nil:
		return OK
	case errors.Is(err, logpipe.ErrPending):
		return Retry
	case errors.Is(err, logpipe.ErrMsgpack):
		i.log.Error("dropping undecodable chunk", "tag", tag, "bytes", len(data), "err", err)
		return Error
	case errors.Is(err, queue.ErrFull):
		return Retry
	default:
		i.log.Warn("queue append failed; Fluent Bit will retry", "tag", tag, "err", err)
		return Retry
	}
}

// Stats returns the instance's exporter counters.
func (i *Instance) Stats() []logpipe.ExporterStats { return i.p.Stats() }

// Close drains for up to Drain_Timeout (default 5s); what is left stays
// queued for the next start.
func (i *Instance) Close() error {
	mu.Lock()
	delete(instances, i)
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), i.drain)
	defer cancel()
	return i.p.Close(ctx)
}

// CloseAll closes every instance still open (FLBPluginExit).
func CloseAll() {
	mu.Lock()
	all := make([]*Instance, 0, len(instances))
	for i := range instances {
		all = append(all, i)
	}
	mu.Unlock()
	for _, i := range all {
		_ = i.Close()
	}
}
