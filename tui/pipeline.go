package tui

import (
	"fmt"
)

// pipelineView is the Pipeline tab: the access-log pipeline per exporter.
type pipelineView struct{}

func (v *pipelineView) render(m *model, w, h int) []string {
	if m.top == nil {
		return []string{"", "  no data yet"}
	}
	st := m.st
	p := m.top.Pipeline
	mode := p.Mode
	if mode == "" {
		mode = "not shipping logs (no logging outputs configured)"
	}
	cols := layout([]column{{"EXPORTER", 16, false}, {"TYPE", 10, false}, {"QUEUE", 7, true}, {"SENT/s", 8, true}, {"SENT", 8, true},
		{"RETRIES", 7, true}, {"DROPPED", 7, true}, {"DEAD-LTR", 8, true}, {title: "LAST ERROR"}}, w-2)
	out := []string{
		"  pipeline: " + mode + fmt.Sprintf(" · log stream: %d subscribers, %d records skipped for slow readers",
			m.top.Header.LogSubscribers, m.top.Header.LogDropped),
		st.header.Render("  " + row(cols, []string{"EXPORTER", "TYPE", "QUEUE", "SENT/s", "SENT", "RETRIES", "DROPPED", "DEAD-LTR", "LAST ERROR"})),
	}
	if len(p.Exporters) == 0 {
		return append(out, "  no exporters")
	}
	for _, e := range p.Exporters {
		last := "-"
		if e.LastError != "" {
			last = e.LastError
			if !e.LastErrorAt.IsZero() {
				last = e.LastErrorAt.UTC().Format("15:04:05") + " " + last
			}
		}
		line := row(cols, []string{clean(e.Name), clean(e.Type), fmt.Sprint(e.QueueDepth), fmtRPS(e.SentPerSec), fmtCount(e.Sent),
			fmtCount(e.Retries), fmtCount(e.Dropped), fmtCount(e.DeadLettered), clean(last)})
		if e.Dropped > 0 || e.DeadLettered > 0 {
			line = st.bad.Render(line)
		}
		out = append(out, "  "+line)
	}
	return out
}
