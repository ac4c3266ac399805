package testutil

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Local Mode configuration for tests: the documents a test would
// otherwise spell out as YAML by hand (an ApiInstance in front of one
// upstream, a Service, a binding, a Configuration), written the way Flex's
// pages write them, and the configuration directory they go in. Tests
// that build what the gateway serves load that directory through
// snapshot.LoadDir or the flexgw binary, so they exercise the real
// configuration path instead of a hand-made ir.Snapshot.

// Resource is one Local Mode document.
type Resource struct {
	// APIVersion defaults to gateway.mulesoft.com/v1alpha1.
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	// Spec is YAML text (the indentation all its lines share is removed,
	// so a raw string may be indented with the Go code around it) or any
	// other value, written as JSON (a YAML flow mapping).
	Spec any
}

// Policy is a policy applied inline on an ApiInstance or by a
// PolicyBinding.
type Policy struct {
	Name string
	// Config is YAML text or a value written as JSON; nil writes none.
	Config any
	// Order is the policy's order; 0 leaves Flex's default.
	Order int
}

// YAML is the document's text.
func (r Resource) YAML() string {
	var b strings.Builder
	v := r.APIVersion
	if v == "" {
		v = "gateway.mulesoft.com/v1alpha1"
	}
	fmt.Fprintf(&b, "apiVersion: %s\nkind: %s\nmetadata:\n  name: %s\n", v, r.Kind, r.Name)
	if r.Namespace != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", r.Namespace)
	}
	b.WriteString("spec:")
	b.WriteString(block(r.Spec, 2))
	return b.String()
}

// APIInstance is an ApiInstance listening on address whose one inline
// service, "upstream", is at upstream, with policies applied inline in the
// order given.
func APIInstance(name, address, upstream string, policies ...Policy) Resource {
	var b strings.Builder
	fmt.Fprintf(&b, "address: %s\nservices:\n  upstream:\n    address: %s\n", address, upstream)
	if len(policies) > 0 {
		b.WriteString("policies:\n")
		for _, p := range policies {
			writePolicy(&b, p, "  - ", "    ")
		}
	}
	return Resource{Kind: "ApiInstance", Name: name, Spec: b.String()}
}

// writePolicy writes p's policyRef, order and config, the first line
// after first, the others after pad.
func writePolicy(b *strings.Builder, p Policy, first, pad string) {
	fmt.Fprintf(b, "%spolicyRef:\n%s  name: %s\n", first, pad, p.Name)
	if p.Order != 0 {
		fmt.Fprintf(b, "%sorder: %d\n", pad, p.Order)
	}
	if p.Config != nil {
		b.WriteString(pad + "config:" + block(p.Config, len(pad)+2))
	}
}

// Service is a Service resource at address.
func Service(name, address string) Resource {
	return Resource{Kind: "Service", Name: name, Spec: "address: " + address + "\n"}
}

// Binding is a PolicyBinding named name applying p to the resource of
// targetKind ("ApiInstance" or "Service") named target.
func Binding(name, targetKind, target string, p Policy) Resource {
	var b strings.Builder
	fmt.Fprintf(&b, "targetRef:\n  kind: %s\n  name: %s\n", targetKind, target)
	writePolicy(&b, p, "", "")
	return Resource{Kind: "PolicyBinding", Name: name, Spec: b.String()}
}

// Route binds ApiInstance api to Service svc (Flex's route policy), as
// api + "-route".
func Route(api, svc string) Resource {
	return Binding(api+"-route", "ApiInstance", api, Policy{Name: "route", Config: map[string]any{"destinationRef": map[string]string{"name": svc}}})
}

// Configuration is a Configuration resource (apiVersion v1beta1, as Flex's
// current pages write it) with spec.
func Configuration(name string, spec any) Resource {
	return Resource{APIVersion: "gateway.mulesoft.com/v1beta1", Kind: "Configuration", Name: name, Spec: spec}
}

// Docs joins documents into one multi-document YAML file.
func Docs(rs ...Resource) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.YAML()
	}
	return strings.Join(parts, "---\n")
}

// ConfDir writes rs as gateway.yaml into a new temporary directory and
// returns it.
func ConfDir(t testing.TB, rs ...Resource) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(Docs(rs...)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// FreePort returns a loopback port that was free a moment ago: Local Mode
// needs a concrete port in an address, so a gateway cannot listen on :0.
func FreePort(t testing.TB) int {
	t.Helper()
	return freeTCPAddr(t).Port
}

// FreeAddr is FreePort as a host:port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return freeTCPAddr(t).String()
}

func freeTCPAddr(t testing.TB) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr)
}

// block renders v as the value of a mapping key at indent: YAML text on
// the following lines, dedented then indented; anything else as JSON on
// the same line.
func block(v any, indent int) string {
	s, ok := v.(string)
	if !ok {
		j, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("testutil: %T is not JSON: %v", v, err))
		}
		return " " + string(j) + "\n"
	}
	// The indentation all lines share (tabs of the Go source around a raw
	// string, then spaces) goes; the YAML's own indentation stays.
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	common, first := "", true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		lead := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			common, first = lead, false
			continue
		}
		for !strings.HasPrefix(lead, common) {
			common = common[:len(common)-1]
		}
	}
	var b strings.Builder
	b.WriteString("\n")
	pad := strings.Repeat(" ", indent)
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString(pad + strings.TrimPrefix(l, common) + "\n")
	}
	return b.String()
}
