package testutil

import (
	"encoding/json"
	"testing"

	"github.com/flexgw/flexgw/config"
)

// The composed documents are Local Mode the config package reads back as
// written: policies with YAML-text and JSON configs in order, a Service,
// bindings to an ApiInstance and a Service, a Configuration.
func TestLocalModeDocsReadBack(t *testing.T) {
	dir := ConfDir(t,
		APIInstance("a", "http://127.0.0.1:8081", "http://127.0.0.1:9001",
			Policy{Name: "rate-limiting-flex", Order: 7, Config: `
				rateLimits:
				  - maximumRequests: 2
				    timePeriodInMilliseconds: 1000
			`},
			Policy{Name: "cors-flex", Config: map[string]any{"publicResource": true}},
			Policy{Name: "ip-allowlist-flex"}),
		Resource{Kind: "ApiInstance", Name: "b", Spec: "address: http://127.0.0.1:8082\n"},
		Resource{Kind: "Service", Name: "t", Namespace: "shop", Spec: "address: http://127.0.0.1:9002\n"},
		Service("s", "https://127.0.0.1:9443"),
		Route("b", "s"),
		Binding("tls", "Service", "s", Policy{Name: "tls-outbound", Config: map[string]any{"skipValidation": true}}),
		Configuration("limits", `
			circuitBreaker:
			  maxRequests: 1
		`),
	)
	set, err := config.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.APIs) != 2 || len(set.Services) != 2 || len(set.Bindings) != 2 || len(set.Configurations) != 1 {
		t.Fatalf("read back %d APIs, %d services, %d bindings, %d configurations; want 2, 2, 2, 1",
			len(set.APIs), len(set.Services), len(set.Bindings), len(set.Configurations))
	}
	a := set.APIs[0]
	if a.Address.Port != 8081 || len(a.Services) != 1 || a.Services[0].Name != "upstream" || len(a.Policies) != 3 {
		t.Fatalf("ApiInstance a: %+v", a)
	}
	var rl struct {
		RateLimits []struct{ MaximumRequests int } `json:"rateLimits"`
	}
	if b, _ := json.Marshal(a.Policies[0].Config); json.Unmarshal(b, &rl) != nil || len(rl.RateLimits) != 1 || rl.RateLimits[0].MaximumRequests != 2 {
		t.Errorf("YAML-text config read back as %v", a.Policies[0].Config)
	}
	if a.Policies[0].Order != 7 || a.Policies[1].Order != config.DefaultPolicyOrder || a.Policies[2].Ref.Name != "ip-allowlist-flex" {
		t.Errorf("policies %+v %+v %+v", a.Policies[0], a.Policies[1], a.Policies[2])
	}
	if set.Services[0].Namespace != "shop" || set.Bindings[1].TargetRef.Kind != "Service" {
		t.Errorf("namespace %q, binding target %+v", set.Services[0].Namespace, set.Bindings[1].TargetRef)
	}
}
