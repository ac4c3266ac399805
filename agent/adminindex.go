package agent

import (
	"html/template"
	"net/http"
	"sort"
	"strings"
)

// adminEndpoint is one entry of the admin API's index.
type adminEndpoint struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	Description string `json:"description,omitempty"`
}

// adminDescriptions documents the admin endpoints the index lists; an
// endpoint mounted without one is listed with none.
var adminDescriptions = map[string]string{
	"/live":               "liveness: 200 while the process serves",
	"/ready":              "readiness: 200 once the first config is served, 503 while starting or draining",
	"/metrics":            "Prometheus metrics (OpenMetrics when asked for)",
	"/api/v1/status":      "version, snapshot, last reload and components",
	"/api/v1/config":      "the snapshot being served, secrets redacted",
	"/api/v1/top":         "the `flexgw top` snapshot: rates, latencies, upstreams, kernel probe, log pipeline",
	"/api/v1/logs/stream": "access-log records as server-sent events (status, api, q filters)",
	"/api/v1/logpipe":     "per-exporter counters of the access-log pipeline",
	"/api/v1/ebpf":        "the kernel probe's per-endpoint and per-listener TCP statistics",
}

// adminIndex serves GET /: the admin endpoints this agent mounts, as JSON
// or, for a browser (Accept: text/html), as a list of links, so a person
// who opens the admin address finds the API instead of a 404.
func (a *Agent) adminIndex() http.Handler {
	paths := []string{"/live", "/ready", "/metrics", "/api/v1/status", "/api/v1/config"}
	for pattern := range a.adminExtra {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok || method != http.MethodGet {
			continue
		}
		paths = append(paths, path)
	}
	sort.Strings(paths)
	var eps []adminEndpoint
	for _, p := range paths {
		eps = append(eps, adminEndpoint{Method: http.MethodGet, Path: p, Description: adminDescriptions[p]})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Accept"), "text/html") {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = indexPage.Execute(w, eps)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"service": "flexgw admin API", "endpoints": eps})
	})
}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>flexgw admin API</title></head>
<body><h1>flexgw admin API</h1><ul>
{{range .}}<li><a href="{{.Path}}">{{.Method}} {{.Path}}</a>{{with .Description}} — {{.}}{{end}}</li>
{{end}}</ul></body></html>
`))
