package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/otlpstandin"
	"github.com/flexgw/flexgw/internal/testutil"
)

// tracing-flex through the binary: the global tracing samples nothing
// (Flex's example: 0/0/0 with per-API sampling by the policy); the API
// with tracing-flex at 100% exports its server span, named by spanName
// and labelled, to the OTLP collector; the API without it exports none.
func TestTracingFlexThroughBinary(t *testing.T) {
	rcv, err := otlpstandin.StartHTTP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	up := startUpstream(t, "up", nil)
	pTraced, pPlain := freePort(t), freePort(t)
	at := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
	startGateway(t, testutil.ConfDir(t,
		testutil.APIInstance("traced", at(pTraced), up.URL, testutil.Policy{Name: "tracing-flex", Config: `
			sampling:
			  client: 100
			  random: 100
			  overall: 100
			spanName: traced-api
			labels:
			  - name: team
			    type: literal
			    keyName: team
			    defaultValue: checkout
		`}),
		testutil.APIInstance("plain", at(pPlain), up.URL),
		testutil.Configuration("tracing", `
			tracing:
			  provider:
			    type: opentelemetry
			    properties:
			      address: http://`+rcv.Addr+`
			  sampling:
			    client: 0
			    random: 0
			    overall: 0
		`),
	))
	for i := 0; i < 3; i++ {
		if code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/p", pPlain)); code != 200 {
			t.Fatalf("plain: %d %q", code, body)
		}
		if code, body, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/t", pTraced)); code != 200 {
			t.Fatalf("traced: %d %q", code, body)
		}
	}
	eventually(t, 45*time.Second, func() string {
		n := 0
		for _, s := range rcv.Spans() {
			if s.Name == "traced-api" && s.Attributes["team"] == "checkout" {
				n++
			}
		}
		if n < 3 {
			return fmt.Sprintf("%d of 3 traced-api server spans with label team=checkout exported (got %d spans)", n, len(rcv.Spans()))
		}
		return ""
	})
	for _, s := range rcv.Spans() {
		if s.Attributes["flexgw.api"] == "default/plain" {
			t.Errorf("a span of the API without tracing-flex was exported (global sampling is 0%%): %+v", s)
		}
	}
}
