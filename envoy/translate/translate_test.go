package translate

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/accesslog"
	"github.com/flexgw/flexgw/ir"
)

var testOpts = Options{GatewayID: "gw-test", AccessLogPath: "/var/log/flexgw/access.log"}

func TestGoldenGoCases(t *testing.T) {
	for name, build := range goCases {
		t.Run(name, func(t *testing.T) {
			res, err := Translate(build(), testOpts)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, res)
			checkGolden(t, name, goldenYAML(t, res))
			// Pure: a second translation is byte-identical.
			again, err := Translate(build(), testOpts)
			if err != nil {
				t.Fatal(err)
			}
			if string(goldenYAML(t, again)) != string(goldenYAML(t, res)) {
				t.Error("translation is not deterministic")
			}
		})
	}
}

// checkResult asserts the invariants every translation must hold.
func checkResult(t *testing.T, res *Result) {
	t.Helper()
	if err := res.Envoy.Validate(); err != nil {
		t.Errorf("envoy resources: %v", err)
	}
	if err := res.GRPC.Validate(); err != nil {
		t.Errorf("grpc resources: %v", err)
	}
	if _, err := res.Envoy.Snapshot("1"); err != nil {
		t.Errorf("envoy snapshot: %v", err)
	}
	if _, err := res.GRPC.Snapshot("1"); err != nil {
		t.Errorf("grpc snapshot: %v", err)
	}
}

func TestAccessLogFormatMatchesRecordSchema(t *testing.T) {
	var keys []string
	for k := range AccessLogFormat("gw") {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := slices.Clone(accesslog.Fields)
	sort.Strings(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("json_format keys = %v\nwant accesslog.Fields %v", keys, want)
	}
}

func TestTranslationErrorsNameTheResource(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(s *ir.Snapshot)
		want   []string
	}{
		{"missing service", func(s *ir.Snapshot) {
			s.Listeners[0].APIs[0].Routes[0].Destinations[0].Service = "default/nope"
		}, []string{`api "default/orders-api" route "create"`, `"default/nope" is not defined`}},
		{"service without endpoints", func(s *ir.Snapshot) {
			s.Services[0].Endpoints = nil
		}, []string{`cluster "default/orders"`, "no endpoints"}},
		{"bad tls version", func(s *ir.Snapshot) {
			s.Services[2].TLS.MinVersion = "9.9"
		}, []string{`cluster "default/users"`, "minVersion"}},
		{"too many capture groups", func(s *ir.Snapshot) {
			s.Listeners[0].APIs[0].Routes[1].Rules[0].Path = ir.MustRegexp("/(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)")
		}, []string{`route "read"`, "at most 9"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := basicSnapshot()
			c.mutate(s)
			res, err := Translate(s, testOpts)
			if err == nil {
				t.Fatalf("want error, got %d listeners", len(res.Envoy.Listeners))
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestPolicyFiltersEnabledPerRoute: a policy of one API must not run on a
// sibling API that shares the listener.
func TestPolicyFiltersEnabledPerRoute(t *testing.T) {
	res, err := Translate(basicSnapshot(), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	apiFilter := "flexgw." + testPolicyName + ".default/orders-api#policies[0]"
	svcFilter := "flexgw." + testPolicyName + ".default/users-cors"
	for _, r := range res.Envoy.Routes[0].VirtualHosts[0].Routes {
		pf := r.GetTypedPerFilterConfig()
		switch {
		case strings.HasPrefix(r.Name, "default/orders-api/") && !strings.HasSuffix(r.Name, "not-found"):
			if pf[apiFilter] == nil || pf[svcFilter] != nil {
				t.Errorf("route %s: filters %v", r.Name, keysOf(pf))
			}
		case strings.HasPrefix(r.Name, "default/users-api/"):
			if pf[apiFilter] != nil || pf[svcFilter] == nil {
				t.Errorf("route %s: filters %v", r.Name, keysOf(pf))
			}
		}
	}
	// Chain: order 10 before order 50, router last, policies disabled.
	var names []string
	mgrFilters := hcmOf(t, res.Envoy.Listeners[0]).HttpFilters
	for _, f := range mgrFilters {
		names = append(names, f.Name)
		if f.Name != "envoy.filters.http.router" && !f.Disabled {
			t.Errorf("filter %s is enabled on the listener", f.Name)
		}
	}
	want := []string{svcFilter, apiFilter, "envoy.filters.http.router"}
	if !slices.Equal(names, want) {
		t.Errorf("chain = %v, want %v", names, want)
	}
}

func keysOf[V any](m map[string]V) []string { return sortedKeys(m) }

func TestRouteStatPrefixesAreUnique(t *testing.T) {
	svc := &ir.Service{Name: "s", Namespace: "n", Protocol: ir.HTTP, Endpoints: []ir.Endpoint{{Host: "10.0.0.1", Port: 80}}}
	route := func(name string) *ir.Route {
		return &ir.Route{Name: name, Destinations: []ir.Destination{{Service: "n/s", Weight: 100}}}
	}
	// "n_a_b" + "c" and "n_a" + "b_c" sanitize to the same prefix.
	s := &ir.Snapshot{
		Listeners: []*ir.Listener{{Name: "l", Protocol: ir.HTTP, Port: 1, APIs: []*ir.API{
			{Name: "a_b", Namespace: "n", BasePath: "/x", Routes: []*ir.Route{route("c")}},
			{Name: "a", Namespace: "n", BasePath: "/y", Routes: []*ir.Route{route("b_c")}},
		}}},
		Services: []*ir.Service{svc},
	}
	res, err := Translate(s, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RouteStats) != 2 {
		t.Fatalf("route stats %v: want 2 distinct prefixes", res.RouteStats)
	}
	seen := map[string]string{}
	for _, r := range res.Envoy.Routes[0].VirtualHosts[0].Routes {
		if r.StatPrefix == "" {
			continue
		}
		api := r.Metadata.FilterMetadata[MetadataNamespace].Fields["api"].GetStringValue()
		if other, ok := seen[r.StatPrefix]; ok && other != api {
			t.Errorf("prefix %s used by %s and %s", r.StatPrefix, other, api)
		}
		seen[r.StatPrefix] = api
		if got := res.RouteStats[r.StatPrefix].API; got != api {
			t.Errorf("RouteStats[%s].API = %s, want %s", r.StatPrefix, got, api)
		}
	}
}
