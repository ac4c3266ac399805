package translate

import (
	"testing"
	"time"

	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// stream-idle-timeout-flex and idle-timeout-flex, as policy.Shape leaves
// them in the snapshot, render as the route's idle_timeout and the
// cluster's common_http_protocol_options.idle_timeout.
func TestIdleTimeoutsRender(t *testing.T) {
	s := basicSnapshot()
	for _, l := range s.Listeners {
		for _, a := range l.APIs {
			for _, r := range a.Routes {
				r.StreamIdleTimeout = 3 * time.Second
			}
		}
	}
	s.Services[0].IdleTimeout = 7 * time.Second
	res, err := Translate(s, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res)
	routes := 0
	for _, rc := range res.Envoy.Routes {
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				if act := r.GetRoute(); act != nil {
					routes++
					if got := act.GetIdleTimeout().AsDuration(); got != 3*time.Second {
						t.Fatalf("route %s idle_timeout %v, want 3s", r.Name, got)
					}
				}
			}
		}
	}
	if routes == 0 {
		t.Fatal("no routes")
	}
	name := ClusterName(s.Services[0].Key())
	for _, c := range res.Envoy.Clusters {
		if c.Name != name {
			if opt := c.TypedExtensionProtocolOptions[httpProtocolOptionsKey]; opt != nil {
				var o upstreamhttpv3.HttpProtocolOptions
				if err := opt.UnmarshalTo(&o); err != nil {
					t.Fatal(err)
				}
				if o.GetCommonHttpProtocolOptions().GetIdleTimeout() != nil {
					t.Fatalf("cluster %s got another service's idle timeout", c.Name)
				}
			}
			continue
		}
		var o upstreamhttpv3.HttpProtocolOptions
		if err := c.TypedExtensionProtocolOptions[httpProtocolOptionsKey].UnmarshalTo(&o); err != nil {
			t.Fatal(err)
		}
		if got := o.GetCommonHttpProtocolOptions().GetIdleTimeout().AsDuration(); got != 7*time.Second {
			t.Fatalf("cluster idle_timeout %v, want 7s", got)
		}
		if o.GetExplicitHttpConfig().GetHttpProtocolOptions() == nil {
			t.Fatal("an HTTP/1.1 service must stay HTTP/1.1")
		}
		return
	}
	t.Fatalf("cluster %s not rendered", name)
}
