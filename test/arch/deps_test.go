package arch

import (
	"os/exec"
	"strings"
	"testing"
)

// goList runs `go list` at the module root with args and returns its
// output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	return strings.Fields(string(out))
}

// The built-in data plane and the policy engine it runs must not link
// go-control-plane: Envoy renderings live in envoy/policyfilter, beside the
// translator. (policy/rls and policy/extauthz are the agent's gRPC services
// for Envoy and may.)
func TestBuiltinDataPlaneDoesNotLinkEnvoyAPI(t *testing.T) {
	for _, root := range []string{"./dataplane/...", "./policy"} {
		deps := goList(t, "-deps", "-f", "{{.ImportPath}}", root)
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed only %v", root, deps)
		}
		for _, d := range deps {
			if strings.HasPrefix(d, "github.com/envoyproxy/go-control-plane") || strings.HasPrefix(d, "github.com/flexgw/flexgw/envoy") {
				t.Errorf("%s links %s; Envoy renderings belong in envoy/policyfilter", root, d)
			}
		}
	}
}
