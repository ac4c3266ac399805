// Package dashboards holds flexgw's Grafana dashboards and Prometheus alert
// rules. The dashboards are defined in Go (dashboards.go) so every panel is
// built the same way — a datasource variable, a unit, a description,
// $__rate_interval — and rendered to the committed *.json files, which
// Grafana provisioning loads as they are. `go test ./dashboards -update`
// regenerates them; the test fails when the JSON and the Go drift, and
// checks every PromQL expression against the metrics flexgw exposes.
package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
)

// Dashboard is one rendered dashboard file.
type Dashboard struct {
	// File is the file name under dashboards/.
	File string
	UID  string
	JSON []byte
}

// datasourceRef points a panel or variable at the dashboard's datasource
// variable, so one import works against any Prometheus.
var datasourceRef = map[string]any{"type": "prometheus", "uid": "${datasource}"}

// exemplarRe matches the histograms that carry trace-id exemplars.
var exemplarRe = regexp.MustCompile(`flexgw_(request_duration|upstream_duration|gateway_overhead)_seconds_bucket`)

// panel is one graph or stat panel.
type panel struct {
	title       string
	description string
	unit        string
	kind        string // "timeseries" (default), "stat", "table"
	targets     []target
	w, h        int
	stack       bool
	// min and max bound the axis (ratios 0..1).
	min, max *float64
}

// target is one PromQL query of a panel.
type target struct {
	expr   string
	legend string
}

// row groups panels under a collapsible title.
type row struct {
	title  string
	panels []panel
	// collapsed rows hold parts that are off unless configured (Envoy):
	// their panels load only when the row is opened.
	collapsed bool
}

// variable is a templating variable.
type variable struct {
	name, label string
	// query is a Grafana Prometheus variable query: label_values(metric, label).
	query string
	multi bool
	// allValue is the regexp "All" stands for: ".+" for job and instance
	// (a series always has them), ".*" (also matching an absent label)
	// for the rest.
	allValue string
}

type dashboard struct {
	file, uid, title, description string
	vars                          []variable
	rows                          []row
}

func f64(v float64) *float64 { return &v }

func (d dashboard) render() (Dashboard, error) {
	templ := []any{map[string]any{
		"name":    "datasource",
		"label":   "Data source",
		"type":    "datasource",
		"query":   "prometheus",
		"current": map[string]any{},
		"hide":    0,
		"refresh": 1,
		"regex":   "",
	}}
	for _, v := range append(append([]variable{}, gatewayVars...), d.vars...) {
		all := v.allValue
		if all == "" {
			all = ".*"
		}
		templ = append(templ, map[string]any{
			"name":       v.name,
			"label":      v.label,
			"type":       "query",
			"datasource": datasourceRef,
			"definition": v.query,
			"query":      map[string]any{"query": v.query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
			"refresh":    2,
			"includeAll": true,
			"allValue":   all,
			"multi":      v.multi,
			"current":    map[string]any{"text": "All", "value": "$__all"},
			"sort":       1,
			"hide":       0,
		})
	}
	var panels []any
	id, y := 1, 0
	for _, r := range d.rows {
		rowPanel := map[string]any{
			"id": id, "type": "row", "title": r.title, "collapsed": r.collapsed, "panels": []any{},
			"gridPos": map[string]any{"h": 1, "w": 24, "x": 0, "y": y},
		}
		panels = append(panels, rowPanel)
		id++
		y++
		x, rowH := 0, 0
		var inRow []any
		for _, p := range r.panels {
			w, h := p.w, p.h
			if w == 0 {
				w = 12
			}
			if h == 0 {
				h = 8
			}
			if x+w > 24 {
				x, y = 0, y+rowH
				rowH = 0
			}
			pm, err := p.render(id, x, y, w, h)
			if err != nil {
				return Dashboard{}, fmt.Errorf("%s: panel %q: %w", d.file, p.title, err)
			}
			inRow = append(inRow, pm)
			id++
			x += w
			if h > rowH {
				rowH = h
			}
		}
		if r.collapsed {
			// Grafana keeps a collapsed row's panels inside the row and
			// lays them out below it when it is opened.
			rowPanel["panels"] = inRow
			continue
		}
		panels = append(panels, inRow...)
		y += rowH
	}
	doc := map[string]any{
		"uid":           d.uid,
		"title":         d.title,
		"description":   d.description,
		"tags":          []string{"flexgw"},
		"editable":      false, // provisioned from these files; edits in the UI would be lost
		"graphTooltip":  1,
		"schemaVersion": 39,
		"version":       1,
		"refresh":       "30s",
		"time":          map[string]any{"from": "now-1h", "to": "now"},
		"timezone":      "",
		"templating":    map[string]any{"list": templ},
		"annotations": map[string]any{"list": []any{map[string]any{
			"name": "Config reloads", "enable": true, "iconColor": "blue",
			"datasource": datasourceRef,
			"expr":       "changes(flexgw_config_last_reload_success_timestamp_seconds" + braces("") + ri + ") > 0",
			"step":       "1m", "titleFormat": "config reloaded",
		}}},
		"links": []any{map[string]any{
			"title": "flexgw dashboards", "type": "dashboards", "tags": []string{"flexgw"}, "asDropdown": true,
			"includeVars": true, "keepTime": true,
		}},
		"panels": panels,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return Dashboard{}, fmt.Errorf("%s: %w", d.file, err)
	}
	return Dashboard{File: d.file, UID: d.uid, JSON: buf.Bytes()}, nil
}

func (p panel) render(id, x, y, w, h int) (map[string]any, error) {
	if p.description == "" || p.unit == "" || len(p.targets) == 0 {
		return nil, fmt.Errorf("needs a description, a unit and a query")
	}
	kind := p.kind
	if kind == "" {
		kind = "timeseries"
	}
	var targets []any
	for i, t := range p.targets {
		tm := map[string]any{
			"refId":        string(rune('A' + i)),
			"datasource":   datasourceRef,
			"expr":         t.expr,
			"legendFormat": t.legend,
			"range":        kind != "table",
			"instant":      kind == "table",
		}
		if kind == "table" {
			tm["format"] = "table"
		}
		// Latency exemplars carry the trace id: Grafana draws them as
		// points that open the trace (see docs/observability.md).
		if kind == "timeseries" && exemplarRe.MatchString(t.expr) {
			tm["exemplar"] = true
		}
		targets = append(targets, tm)
	}
	defaults := map[string]any{"unit": p.unit}
	if p.min != nil {
		defaults["min"] = *p.min
	}
	if p.max != nil {
		defaults["max"] = *p.max
	}
	options := map[string]any{}
	switch kind {
	case "timeseries":
		custom := map[string]any{"fillOpacity": 10, "lineWidth": 1, "showPoints": "never"}
		if p.stack {
			custom["stacking"] = map[string]any{"mode": "normal", "group": "A"}
			custom["fillOpacity"] = 30
		}
		defaults["custom"] = custom
		options["legend"] = map[string]any{"displayMode": "table", "placement": "bottom", "calcs": []string{"mean", "max", "lastNotNull"}}
		options["tooltip"] = map[string]any{"mode": "multi", "sort": "desc"}
	case "stat":
		options["reduceOptions"] = map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false}
		options["colorMode"] = "value"
		options["graphMode"] = "area"
	}
	return map[string]any{
		"id":          id,
		"type":        kind,
		"title":       p.title,
		"description": p.description,
		"datasource":  datasourceRef,
		"gridPos":     map[string]any{"h": h, "w": w, "x": x, "y": y},
		"fieldConfig": map[string]any{"defaults": defaults, "overrides": []any{}},
		"options":     options,
		"targets":     targets,
	}, nil
}

// All renders every dashboard.
func All() ([]Dashboard, error) {
	var out []Dashboard
	for _, d := range definitions() {
		r, err := d.render()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
