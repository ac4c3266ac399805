package main

// The stand-in's access log. The stand-in proxies nothing, so a test tells
// it which requests it "served" (POST /test/requests) and it writes them
// the way Envoy's file access log would: to the path, and in the
// json_format, of the HttpConnectionManager access log it received over
// LDS. Each command operator of the format is rendered from the request
// description; operators the stand-in does not know render as null, and a
// value that is exactly one numeric operator stays a JSON number, as in
// Envoy's typed json_format output.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// servedRequest describes one request the stand-in pretends to have served.
// Metadata values (api, route, policy) are what Envoy would read from the
// route's and the filters' metadata.
type servedRequest struct {
	Method          string            `json:"method"`
	Path            string            `json:"path"`
	Code            int               `json:"code"`
	Flags           string            `json:"flags"`
	DurationMs      int64             `json:"duration_ms"`
	UpstreamMs      *int64            `json:"upstream_ms"`
	BytesReceived   int64             `json:"bytes_received"`
	BytesSent       int64             `json:"bytes_sent"`
	UpstreamHost    string            `json:"upstream_host"`
	UpstreamCluster string            `json:"upstream_cluster"`
	Headers         map[string]string `json:"headers"`
	API             string            `json:"api"`
	Route           string            `json:"route"`
	TraceID         string            `json:"trace_id"`
	Policy          string            `json:"policy"`
	PolicyOutcome   string            `json:"policy_outcome"`
	// Count repeats the request; 0 means once.
	Count int `json:"count"`
}

var accessLog struct {
	mu     sync.Mutex
	path   string
	format map[string]any
	// atExit are lines for requests "finished while draining": written
	// when SIGTERM arrives, just before the stand-in exits.
	atExit []byte
}

// learnAccessLog keeps the first file access log of the listeners of an
// LDS response.
func learnAccessLog(resources []*anypb.Any) {
	for _, r := range resources {
		var l listenerv3.Listener
		if r.UnmarshalTo(&l) != nil {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig() == nil || f.GetTypedConfig().UnmarshalTo(&hcm) != nil {
					continue
				}
				for _, al := range hcm.GetAccessLog() {
					var fl filev3.FileAccessLog
					if al.GetTypedConfig() == nil || al.GetTypedConfig().UnmarshalTo(&fl) != nil {
						continue
					}
					js := fl.GetLogFormat().GetJsonFormat()
					if fl.GetPath() == "" || js == nil {
						continue
					}
					accessLog.mu.Lock()
					accessLog.path, accessLog.format = fl.GetPath(), js.AsMap()
					accessLog.mu.Unlock()
					event("access log " + fl.GetPath())
					return
				}
			}
		}
	}
}

// serveTestRequests is POST /test/requests: a JSON array of servedRequest,
// written as access-log lines (with ?at=exit: when SIGTERM arrives, as the
// last requests of a drain). 503 until LDS has delivered an access log.
func serveTestRequests(w http.ResponseWriter, r *http.Request) {
	var reqs []servedRequest
	if err := json.NewDecoder(r.Body).Decode(&reqs); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	accessLog.mu.Lock()
	defer accessLog.mu.Unlock()
	if accessLog.path == "" {
		http.Error(w, "no access log received over LDS yet", http.StatusServiceUnavailable)
		return
	}
	var out []byte
	n := 0
	for _, req := range reqs {
		count := max(req.Count, 1)
		for range count {
			rec := map[string]any{}
			for k, v := range accessLog.format {
				s, ok := v.(string)
				if !ok {
					rec[k] = v
					continue
				}
				rec[k] = render(s, &req)
			}
			b, err := json.Marshal(rec)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			out = append(append(out, b...), '\n')
			n++
		}
	}
	if r.URL.Query().Get("at") == "exit" {
		accessLog.atExit = append(accessLog.atExit, out...)
		fmt.Fprintf(w, "%d lines at exit\n", n)
		return
	}
	if err := appendAccessLog(out); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "%d lines\n", n)
}

func appendAccessLog(out []byte) error {
	f, err := os.OpenFile(accessLog.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeAtExit writes the lines kept for exit, with "{ads}" in them replaced
// by whether the ADS stream was still up at that moment ("up" or "down").
func writeAtExit() {
	accessLog.mu.Lock()
	defer accessLog.mu.Unlock()
	if len(accessLog.atExit) == 0 {
		return
	}
	state := "down"
	if adsUp.Load() {
		state = "up"
	}
	out := strings.ReplaceAll(string(accessLog.atExit), "{ads}", state)
	if err := appendAccessLog([]byte(out)); err != nil {
		logf("error", "access log at exit: %v", err)
	}
}

var operatorRE = regexp.MustCompile(`%[A-Z_]+(\([^)]*\))?%`)

// render substitutes the command operators of one json_format value.
func render(format string, req *servedRequest) any {
	if loc := operatorRE.FindStringIndex(format); loc != nil && loc[0] == 0 && loc[1] == len(format) {
		v, ok := operator(format, req)
		if !ok {
			return nil
		}
		return v
	}
	return operatorRE.ReplaceAllStringFunc(format, func(op string) string {
		v, ok := operator(op, req)
		if !ok {
			return "-"
		}
		return fmt.Sprint(v)
	})
}

// operator is the value of one command operator; false when Envoy would
// have none (a missing header, no upstream, unknown metadata).
func operator(op string, req *servedRequest) (any, bool) {
	str := func(s string) (any, bool) { return s, s != "" }
	name, arg, _ := strings.Cut(strings.Trim(op, "%"), "(")
	arg = strings.TrimSuffix(arg, ")")
	switch name {
	case "START_TIME":
		return time.Now().UTC().Add(-time.Duration(req.DurationMs) * time.Millisecond).Format("2006-01-02T15:04:05.000Z"), true
	case "PROTOCOL":
		return "HTTP/1.1", true
	case "RESPONSE_CODE":
		return req.Code, true
	case "RESPONSE_FLAGS":
		if req.Flags == "" {
			return "-", true
		}
		return req.Flags, true
	case "BYTES_RECEIVED":
		return req.BytesReceived, true
	case "BYTES_SENT":
		return req.BytesSent, true
	case "DURATION":
		return req.DurationMs, true
	case "COMMON_DURATION":
		if arg != "US_TX_BEG:US_RX_BEG:ms" || req.UpstreamMs == nil {
			return nil, false
		}
		return *req.UpstreamMs, true
	case "UPSTREAM_HOST":
		return str(req.UpstreamHost)
	case "UPSTREAM_CLUSTER":
		return str(req.UpstreamCluster)
	case "DOWNSTREAM_REMOTE_ADDRESS":
		return "127.0.0.1:40000", true
	case "TRACE_ID":
		return str(req.TraceID)
	case "REQ":
		for _, h := range strings.Split(arg, "?") {
			switch h {
			case ":METHOD":
				return str(req.Method)
			case ":PATH":
				return str(req.Path)
			}
			for k, v := range req.Headers {
				if strings.EqualFold(k, h) {
					return v, true
				}
			}
		}
		return nil, false
	case "METADATA", "DYNAMIC_METADATA":
		// METADATA(ROUTE:flexgw:api) / DYNAMIC_METADATA(flexgw:policy)
		parts := strings.Split(arg, ":")
		switch parts[len(parts)-1] {
		case "api":
			return str(req.API)
		case "route":
			return str(req.Route)
		case "policy":
			return str(req.Policy)
		case "policy_outcome":
			return str(req.PolicyOutcome)
		}
		return nil, false
	}
	return nil, false
}
