package translate

import (
	"net/http"
	"regexp"
	"testing"

	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	envoymatcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/flexgw/flexgw/ir"
)

// evalPredicate emulates Envoy's evaluation of an xDS matcher predicate on
// request headers (a stand-in: Envoy cannot run here).
func evalPredicate(t *testing.T, p *xdsmatcherv3.Matcher_MatcherList_Predicate, h map[string]string) bool {
	t.Helper()
	switch m := p.MatchType.(type) {
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_:
		in := &envoymatcherv3.HttpRequestHeaderMatchInput{}
		if err := m.SinglePredicate.Input.TypedConfig.UnmarshalTo(in); err != nil {
			t.Fatal(err)
		}
		v, ok := h[in.HeaderName]
		if !ok {
			return false
		}
		re := m.SinglePredicate.GetValueMatch().GetSafeRegex().GetRegex()
		return regexp.MustCompile("^(?:" + re + ")$").MatchString(v)
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_OrMatcher:
		for _, q := range m.OrMatcher.Predicate {
			if evalPredicate(t, q, h) {
				return true
			}
		}
		return false
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_AndMatcher:
		for _, q := range m.AndMatcher.Predicate {
			if !evalPredicate(t, q, h) {
				return false
			}
		}
		return true
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_NotMatcher:
		return !evalPredicate(t, m.NotMatcher, h)
	}
	t.Fatalf("unknown predicate %T", p.MatchType)
	return false
}

// TestPolicyRulesMatchBuiltinDataPlane: a policy restricted by rules runs
// on Envoy for exactly the requests the built-in data plane runs it for.
func TestPolicyRulesMatchBuiltinDataPlane(t *testing.T) {
	s := basicSnapshot()
	api := s.Listeners[0].APIs[0]
	pol := api.Policies[0]
	res, err := Translate(s, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	var ewm *matchingv3.ExtensionWithMatcher
	for _, f := range hcmOf(t, res.Envoy.Listeners[0]).HttpFilters {
		if f.Name == "flexgw."+testPolicyName+"."+pol.Binding {
			ewm = &matchingv3.ExtensionWithMatcher{}
			if err := f.GetTypedConfig().UnmarshalTo(ewm); err != nil {
				t.Fatalf("filter %s is not wrapped in an ExtensionWithMatcher: %v", f.Name, err)
			}
		}
	}
	if ewm == nil {
		t.Fatal("policy filter not found")
	}
	fm := ewm.XdsMatcher.GetMatcherList().Matchers[0]
	cases := []struct {
		method, path string
		header       http.Header
	}{
		{"POST", "/api/orders/x", nil},
		{"GET", "/api/orders/x", nil},
		{"GET", "/api/orders/items/42", http.Header{"X-Tenant": {"acme"}}},
		{"GET", "/api/orders/items/42?full=1", http.Header{"X-Tenant": {"acme"}}},
		{"GET", "/api/orders/items/42", nil},
		{"GET", "/api/orders/items/4x2", http.Header{"X-Tenant": {"acme"}}},
		{"PUT", "/api/orders", nil},
	}
	for _, c := range cases {
		h := map[string]string{":method": c.method, ":path": c.path, ":authority": "shop.example.com"}
		for k, v := range c.header {
			h[http.CanonicalHeaderKey(k)] = v[0]
			h[lower(k)] = v[0]
		}
		skipped := evalPredicate(t, fm.Predicate, h)
		// The built-in data plane (dataplane.withRules): strip the base
		// path, match each rule, run the policy on any match.
		path := c.path
		if i := indexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		rest, _ := ir.StripBasePath(api.BasePath, path)
		runs := false
		for i := range pol.Rules {
			if pol.Rules[i].Matches(c.method, "shop.example.com", ir.MatchPath(rest), c.header) {
				runs = true
			}
		}
		if skipped == runs {
			t.Errorf("%s %s %v: envoy skips=%v, built-in runs=%v", c.method, c.path, c.header, skipped, runs)
		}
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
