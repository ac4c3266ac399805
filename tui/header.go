package tui

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// header renders the four fixed lines above every view: identity and
// reload result, totals, connection state, and the tab bar.
func (m *model) header() []string {
	st := m.st
	var l1, l2, l3 string
	if t := m.top; t != nil {
		h := t.Header
		parts := []string{st.title.Render("flexgw top"), clean(orDash(h.GatewayID)), clean(orDash(h.Version)), clean(orDash(h.DataPlane)),
			"up " + fmtUptime(h.UptimeSeconds), fmt.Sprintf("snapshot v%d", h.SnapshotVersion)}
		l1 = strings.Join(parts, " · ")
		switch {
		case h.Reload.Error != "":
			l1 += " · " + st.bad.Render("reload FAILED: "+clean(h.Reload.Error))
		case h.Reload.OK:
			l1 += " · " + st.good.Render("reload ok")
		}
		tot := h.Totals
		errS := fmt.Sprintf("errors %s%%", fmtPct(tot.ErrorPct))
		if tot.ErrorPct >= 1 {
			errS = st.bad.Render(errS)
		}
		l2 = fmt.Sprintf("total %s rps · %s · p50 %sms · p95 %sms · p99 %sms · denials %d · %ds window",
			fmtRPS(tot.RPS), errS, fmtMs(tot.P50Ms), fmtMs(tot.P95Ms), fmtMs(tot.P99Ms), tot.Denials, h.WindowSeconds)
	} else {
		l1 = st.title.Render("flexgw top") + " · " + m.adminURL
		l2 = "waiting for the first snapshot…"
	}
	switch {
	case m.err != nil:
		age := ""
		if !m.lastOK.IsZero() {
			age = fmt.Sprintf("; showing data from %s ago", m.now().Sub(m.lastOK).Round(time.Second))
		}
		what, err := "gateway error at", m.err
		if _, ok := errors.AsType[*net.OpError](err); ok {
			what = "gateway unreachable at"
		}
		// The URL is already in the line; show what went wrong with it.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		l3 = st.bad.Render(fmt.Sprintf("%s %s: %v — reconnecting%s", what, m.adminURL, err, age))
	default:
		l3 = st.good.Render("connected") + " to " + m.adminURL + fmt.Sprintf(" · refresh %s", m.refresh)
		switch {
		case m.stream.err != nil:
			l3 += " · " + st.warn.Render("log stream: "+m.stream.err.Error())
		case m.stream.dropped > 0:
			l3 += " · " + st.warn.Render(fmt.Sprintf("log stream too slow: %d records skipped", m.stream.dropped))
		}
	}
	var tabs []string
	for i := range numViews {
		lbl := tabLabel(i)
		if i == m.view {
			if m.ascii {
				lbl = "[" + lbl[1:len(lbl)-1] + "]"
			} else {
				lbl = st.tabOn.Render(lbl)
			}
		} else {
			lbl = st.tabOff.Render(lbl)
		}
		tabs = append(tabs, lbl)
	}
	l4 := strings.Join(tabs, " ") + "   " + st.dim.Render("? help  q quit")
	return []string{clip(l1, m.width), clip(l2, m.width), clip(l3, m.width), clip(l4, m.width)}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
