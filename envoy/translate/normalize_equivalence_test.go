package translate

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/flexgw/flexgw/ir"
)

// This file extends the routing equivalence to the request path: Envoy
// normalises :path by the HTTP connection manager settings the
// translation renders, the built-in data plane by ir.NormalizePath; for
// every path both must answer alike and send the upstream the same path.

// envoyNormalize is a stand-in for the HTTP connection manager's path
// handling (Envoy cannot run here), written from Envoy's PathUtil and the
// URL canonicaliser it calls, step by step as Envoy runs them and only as
// far as the translated hcm enables them. It is deliberately a separate
// implementation from ir.NormalizePath. status is 400 for a rejected path,
// 307 for a redirect (path is then the Location), else 0.
func envoyNormalize(hcm *hcmv3.HttpConnectionManager, full string) (string, int) {
	path, query, hasQuery := strings.Cut(full, "?")
	redirect := false
	switch act := hcm.GetPathWithEscapedSlashesAction(); act {
	case hcmv3.HttpConnectionManager_REJECT_REQUEST, hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT, hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		un := strings.NewReplacer("%2F", "/", "%2f", "/", "%5C", `\`, "%5c", `\`).Replace(path)
		if un != path {
			if act == hcmv3.HttpConnectionManager_REJECT_REQUEST {
				return "", 400
			}
			redirect = act == hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT
		}
		path = un
	}
	if hcm.GetNormalizePath().GetValue() {
		// strip_dotdot_segments_with_parameters.
		segs := strings.Split(path, "/")
		for i, sg := range segs {
			if strings.HasPrefix(sg, "..;") {
				segs[i] = ".."
			} else if strings.HasPrefix(sg, ".;") {
				segs[i] = "."
			}
		}
		path = strings.Join(segs, "/")
		// The URL canonicaliser: backslashes are slashes, escapes of
		// unreserved characters decoded, other escapes (and broken ones)
		// copied, bytes a path cannot hold escaped; then dot segments.
		var b strings.Builder
		for i := 0; i < len(path); i++ {
			c := path[i]
			switch {
			case c == '\\':
				b.WriteByte('/')
			case c == '%' && i+2 < len(path) && isHex(path[i+1]) && isHex(path[i+2]):
				var v byte
				fmt.Sscanf(path[i+1:i+3], "%02x", &v)
				if 'a' <= v && v <= 'z' || 'A' <= v && v <= 'Z' || '0' <= v && v <= '9' || strings.IndexByte("-._~", v) >= 0 {
					b.WriteByte(v)
				} else {
					b.WriteString(path[i : i+3])
				}
				i += 2
			case c <= ' ' || c >= 0x7f || strings.IndexByte("\"#<>`{}", c) >= 0:
				fmt.Fprintf(&b, "%%%02X", c)
			default:
				b.WriteByte(c)
			}
		}
		in := strings.Split(b.String()[1:], "/")
		var out []string
		for i, sg := range in {
			last := i == len(in)-1
			switch sg {
			case ".":
			case "..":
				if len(out) > 0 {
					out = out[:len(out)-1]
				}
			default:
				out = append(out, sg)
				continue
			}
			if last {
				out = append(out, "")
			}
		}
		path = "/" + strings.Join(out, "/")
	}
	if hcm.GetMergeSlashes() && strings.Contains(path, "//") {
		var parts []string
		for _, sg := range strings.Split(path, "/") {
			if sg != "" {
				parts = append(parts, sg)
			}
		}
		np := "/" + strings.Join(parts, "/")
		if strings.HasSuffix(path, "/") && np != "/" {
			np += "/"
		}
		path = np
	}
	if hasQuery {
		path += "?" + query
	}
	if redirect {
		return path, 307
	}
	return path, 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// envoyServe is Envoy on the translation: path handling by the listener's
// connection manager, then the route table.
func envoyServe(t *testing.T, res *Result, req request) outcome {
	t.Helper()
	return envoyServeHCM(t, hcmOf(t, res.Envoy.Listeners[0]), res, req)
}

func envoyServeHCM(t *testing.T, hcm *hcmv3.HttpConnectionManager, res *Result, req request) outcome {
	t.Helper()
	p, status := envoyNormalize(hcm, req.path)
	if status == 307 {
		return outcome{status: 307, path: p}
	}
	if status != 0 {
		return outcome{status: status}
	}
	req.path = p
	return envoyRoute(t, res.Envoy.Routes[0], req)
}

// builtinServe is the built-in data plane: ir.NormalizePath, then routing.
func builtinServe(s *ir.Snapshot, req request, es ir.EscapedSlashes) outcome {
	path, query, hasQuery := strings.Cut(req.path, "?")
	if path == "" || path[0] != '/' {
		return outcome{status: 400}
	}
	np, v := ir.NormalizePath(path, es)
	if hasQuery {
		np += "?" + query
	}
	switch v {
	case ir.PathReject:
		return outcome{status: 400}
	case ir.PathRedirect:
		return outcome{status: 307, path: np}
	}
	req.path = np
	return irRoute(s, s.Listeners[0], req)
}

// attackPaths are the path attacks of issue 12 (dataplane/security_test.go
// sends them to the built-in data plane over sockets).
var attackPaths = []string{
	"/admin/x", "//admin/x", "/./admin/x", "/%61dmin/x", "/x/../admin/x", "/%2e/admin/x",
	"/x/%2E%2e/admin/x", `/x\..\admin/x`, "/%2Fadmin/x", "/x%5C..%5Cadmin/x",
	"/public/../secure/x", "/public/%2e%2e/secure/x", "/public/..;/secure/x", "/public/%2e%2e;/secure/x",
	"/api/../../etc/passwd", "/api/x/../y", "/api/orders/../../users/1", "/api//orders///items/./1",
	"/api/orders/%2e%2e/orders/items/1?q=1", "/a%zz", "/a%", "/users/%37", "/users/7/..;x/8",
	"/.well-known/x", "/api/orders/a%2Fb", "/api/orders/a%2fb/../../x",
}

// equivalenceSnapshots are the snapshots the path equivalence runs on.
func equivalenceSnapshots(t *testing.T) map[string]*ir.Snapshot {
	m := map[string]*ir.Snapshot{"basic": basicSnapshot()}
	for _, d := range []string{"resource-model", "inline", "weighted-paths", "upstream-features"} {
		m[d] = loadDir(t, "testdata/in/"+d)
	}
	return m
}

// planes is one snapshot translated with one escaped-slashes setting.
type planes struct {
	name string
	es   ir.EscapedSlashes
	snap *ir.Snapshot
	res  *Result
	hcm  *hcmv3.HttpConnectionManager
}

func translateAll(t *testing.T, snaps map[string]*ir.Snapshot) []planes {
	var out []planes
	for _, es := range []ir.EscapedSlashes{ir.EscapedSlashesReject, ir.EscapedSlashesUnescapeRedirect, ir.EscapedSlashesUnescapeForward, ir.EscapedSlashesKeep} {
		opts := testOpts
		opts.EscapedSlashes = es
		for name, s := range snaps {
			res, err := Translate(s, opts)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, planes{name: name, es: es, snap: s, res: res, hcm: hcmOf(t, res.Envoy.Listeners[0])})
		}
	}
	return out
}

func checkPathEquivalence(t *testing.T, all []planes, paths []string) {
	t.Helper()
	for _, pl := range all {
		for _, p := range paths {
			for _, method := range []string{"GET", "POST"} {
				req := request{method: method, host: "shop.example.com", path: p, header: nil, random: 0}
				got := envoyServeHCM(t, pl.hcm, pl.res, req)
				want := builtinServe(pl.snap, req, pl.es)
				if got != want {
					t.Errorf("%s, escaped slashes %s: %s %q: envoy %+v, built-in %+v", pl.name, pl.es, method, p, got, want)
				}
			}
		}
	}
}

func TestPathNormalizationMatchesEnvoy(t *testing.T) {
	checkPathEquivalence(t, translateAll(t, equivalenceSnapshots(t)), attackPaths)
}

// TestPathNormalizationMatchesEnvoyRandom is the property: random paths
// built from the pieces attacks are made of route alike on both.
func TestPathNormalizationMatchesEnvoyRandom(t *testing.T) {
	pieces := []string{"/", "/", "/", ".", "..", "%2e", "%2E", "%2F", "%2f", "%5C", "%5c", `\`, ";", ";x",
		"api", "orders", "items", "1", "users", "admin", "flights", "web", "grpc", "%61", "%7E", "~", "%20", " ",
		"%zz", "%", "%4", "%C3%A9", "\xc3\xa9", "?", "q=1", "#", "a", "-", "_"}
	r := rand.New(rand.NewPCG(12, 34))
	paths := make([]string, 0, 1500)
	for len(paths) < cap(paths) {
		var b strings.Builder
		b.WriteByte('/')
		for n := r.IntN(8); n >= 0; n-- {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		paths = append(paths, b.String())
	}
	checkPathEquivalence(t, translateAll(t, equivalenceSnapshots(t)), paths)
}

func FuzzPathNormalizationMatchesEnvoy(f *testing.F) {
	for _, p := range attackPaths {
		f.Add(p)
	}
	var all []planes
	f.Fuzz(func(t *testing.T, p string) {
		if all == nil {
			all = translateAll(t, map[string]*ir.Snapshot{"basic": basicSnapshot()})
		}
		checkPathEquivalence(t, all, []string{"/" + p})
	})
}
