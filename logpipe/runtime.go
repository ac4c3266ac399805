package logpipe

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/flexgw/flexgw/exporters"
	"github.com/flexgw/flexgw/internal/jsonstr"
)

// RuntimeHandler is a slog.Handler that forwards the agent's own log
// records (time, level, component, message and attributes) to the
// runtime-log outputs, at or above runtimeLogs.logLevel. It never blocks:
// when the stage is full the record is dropped. Next, if set, also
// receives every record (the console handler, typically).
type RuntimeHandler struct {
	p     *Pipeline
	next  slog.Handler
	attrs []byte // pre-rendered ,"k":v pairs
	group string
}

var _ slog.Handler = (*RuntimeHandler)(nil)

// RuntimeHandler returns a handler feeding p's runtime outputs and next
// (which may be nil).
func (p *Pipeline) RuntimeHandler(next slog.Handler) *RuntimeHandler {
	return &RuntimeHandler{p: p, next: next}
}

func (h *RuntimeHandler) forwards(level slog.Level) bool {
	r := h.p.route.Load()
	return len(r.runtime) > 0 && level >= r.level
}

// Enabled implements slog.Handler.
func (h *RuntimeHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.forwards(level) || (h.next != nil && h.next.Enabled(ctx, level))
}

// Handle implements slog.Handler.
func (h *RuntimeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	if !h.forwards(r.Level) {
		return err
	}
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b := []byte(`{"time":"`)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":`...)
	b = jsonstr.Append(b, r.Level.String())
	b = append(b, `,"message":`...)
	b = jsonstr.Append(b, r.Message)
	b = append(b, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.group, a)
		return true
	})
	b = append(b, '}')
	e := Entry{Time: t, Kind: exporters.Runtime}
	if fs, perr := splitObject(b, nil); perr == nil {
		e.Fields = fs
	}
	if e.Get("component") == nil {
		e.Set("component", []byte(`"agent"`))
	}
	select {
	case h.p.rt <- e:
	default:
		h.p.memDrops.Add(1)
	}
	return err
}

func appendAttr(b []byte, group string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	key := a.Key
	if group != "" {
		key = group + "." + key
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, ga := range a.Value.Group() {
			b = appendAttr(b, key, ga)
		}
		return b
	}
	b = append(b, ',')
	b = jsonstr.Append(b, key)
	b = append(b, ':')
	switch a.Value.Kind() {
	case slog.KindInt64:
		return strconv.AppendInt(b, a.Value.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, a.Value.Uint64(), 10)
	case slog.KindBool:
		return strconv.AppendBool(b, a.Value.Bool())
	case slog.KindDuration:
		return jsonstr.Append(b, a.Value.Duration().String())
	default:
		return jsonstr.Append(b, a.Value.String())
	}
}

// WithAttrs implements slog.Handler.
func (h *RuntimeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append([]byte(nil), h.attrs...)
	for _, a := range as {
		h2.attrs = appendAttr(h2.attrs, h.group, a)
	}
	if h.next != nil {
		h2.next = h.next.WithAttrs(as)
	}
	return &h2
}

// WithGroup implements slog.Handler.
func (h *RuntimeHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	if h.group != "" {
		h2.group = h.group + "." + name
	} else {
		h2.group = name
	}
	if h.next != nil {
		h2.next = h.next.WithGroup(name)
	}
	return &h2
}
