package policyfilter_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/flexgw/flexgw/envoy/policyfilter"
	"github.com/flexgw/flexgw/internal/testutil"
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

type envoyFixture struct {
	Name          string          `json:"name"`
	Config        json.RawMessage `json:"config"`
	SharedStorage bool            `json:"sharedStorage"`
}

type validator interface{ ValidateAll() error }

func protoJSON(t *testing.T, m proto.Message) any {
	t.Helper()
	if m == nil {
		return nil
	}
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			t.Fatalf("%T does not validate: %v", m, err)
		}
	} else {
		t.Fatalf("%T has no ValidateAll", m)
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return map[string]any{"@type": string(m.ProtoReflect().Descriptor().FullName()), "value": v}
}

// TestEnvoyGolden renders every fixture in testdata/in, checks each
// proto with ValidateAll, and compares with testdata/out (regenerate
// with go test ./envoy/policyfilter -run TestEnvoyGolden -update).
func TestEnvoyGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/in/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var fx envoyFixture
			if err := json.Unmarshal(raw, &fx); err != nil {
				t.Fatal(err)
			}
			p := &ir.Policy{Name: fx.Name, Binding: "default/" + name, Order: 50, Config: fx.Config}
			if err := policy.Check(p); err != nil {
				t.Fatalf("fixture invalid: %v", err)
			}
			render, ok := policyfilter.Lookup(fx.Name)
			if !ok {
				t.Fatalf("%s does not render to Envoy", fx.Name)
			}
			snap := &ir.Snapshot{}
			if fx.SharedStorage {
				snap.SharedStorage = &ir.SharedStorage{Redis: &ir.Redis{Address: "127.0.0.1:6379"}}
			}
			fs, err := render(policyfilter.Env{Snapshot: snap, API: testAPI()}, p)
			if err != nil {
				t.Fatal(err)
			}
			var out []any
			for _, ef := range fs {
				if ef.Name == "" || ef.Config == nil {
					t.Fatalf("filter without name or config: %+v", ef)
				}
				var clusters []any
				for _, c := range ef.Clusters {
					clusters = append(clusters, protoJSON(t, c))
				}
				entry := map[string]any{"name": ef.Name, "config": protoJSON(t, ef.Config)}
				if ef.PerRoute != nil {
					entry["perRoute"] = protoJSON(t, ef.PerRoute)
				}
				if clusters != nil {
					entry["clusters"] = clusters
				}
				out = append(out, entry)
			}
			got, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			testutil.Golden(t, filepath.Join("testdata/out", name+".json"), got)
		})
	}
}

// Every registered Flex policy renders (or is shaping and renders
// nothing), and every rendering belongs to a registered policy.
func TestEveryPolicyRendersForEnvoy(t *testing.T) {
	for _, n := range policy.Names() {
		if _, ok := policyfilter.Lookup(n); !ok {
			t.Errorf("%s has no Envoy rendering: add envoy/policyfilter/<policy>.go", n)
		}
	}
	for _, n := range policyfilter.Names() {
		if _, ok := policy.Lookup(n); !ok {
			t.Errorf("rendering %s has no policy definition", n)
		}
	}
}

func TestEnvoyRefusesClaimKeyedRateLimit(t *testing.T) {
	p := &ir.Policy{Name: "rate-limiting-flex", Binding: "default/rate-limiting-flex", Order: 50, Config: json.RawMessage(`{"rateLimits":[{"maximumRequests":1,"timePeriodInMilliseconds":1000}],"keySelector":"#[authentication.properties.claims.sub]"}`)}
	render, _ := policyfilter.Lookup(p.Name)
	snap := &ir.Snapshot{SharedStorage: &ir.SharedStorage{Redis: &ir.Redis{Address: "127.0.0.1:6379"}}}
	_, err := render(policyfilter.Env{Snapshot: snap, API: testAPI()}, p)
	if err == nil || !strings.Contains(err.Error(), "claimsToHeaders") {
		t.Fatalf("got %v, want advice to use claimsToHeaders", err)
	}
}

func testAPI() *ir.API { return &ir.API{Name: "api", Namespace: "default", BasePath: "/"} }
