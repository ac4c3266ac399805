package dataplane

import (
	"net/http"
	"strconv"

	"github.com/flexgw/flexgw/ir"
)

// answer replies for a route that answers by itself, after its policies
// ran (Envoy's router filter answers a redirect or direct_response route
// the same way, behind the HTTP filters): a redirect with its Location
// and no body, or the direct response's status and body.
func (st *reqState) answer(w http.ResponseWriter, r *http.Request) {
	rt := st.route
	h := w.Header()
	h["X-Request-Id"] = []string{st.reqID}
	if rd := rt.redirect; rd != nil {
		target := requestPath(r)
		if r.URL.RawQuery != "" || r.URL.ForceQuery {
			target += "?" + requestQuery(r)
		}
		h["Location"] = []string{rd.Location(st.ln.scheme, r.Host, rt.api.base, st.rule, target)}
		h["Content-Length"] = []string{"0"}
		st.status = rd.StatusCode
		w.WriteHeader(rd.StatusCode)
		return
	}
	st.writeDirect(w, r, rt.direct)
}

// writeDirect answers with a direct response: its status and body.
func (st *reqState) writeDirect(w http.ResponseWriter, r *http.Request, d *ir.DirectResponse) {
	h := w.Header()
	h["X-Request-Id"] = []string{st.reqID}
	h["Content-Length"] = []string{strconv.Itoa(len(d.Body))}
	if d.Body != "" {
		h["Content-Type"] = []string{"text/plain"}
	}
	st.status = d.Status
	w.WriteHeader(d.Status)
	if d.Body != "" && r.Method != http.MethodHead {
		n, _ := w.Write([]byte(d.Body))
		st.bytesOut += int64(n)
	}
}

// upstreamHost is the Host header of the upstream request: the route's
// hostRewrite (Gateway API's URLRewrite hostname), else the client's when
// the route preserves it (Envoy's behaviour, which Gateway API and
// Ingress expect), else the endpoint's.
func (st *reqState) upstreamHost(ep *endpoint, r *http.Request) string {
	switch {
	case st.route.hostRewrite != "":
		return st.route.hostRewrite
	case st.route.preserveHost && r.Host != "":
		return r.Host
	}
	return ep.host
}
