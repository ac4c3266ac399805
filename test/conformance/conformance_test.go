package conformance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexgw/flexgw/internal/gatewaytest"
	"github.com/flexgw/flexgw/kube/kubetest"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/gateway-api/conformance"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"
)

var flexgwBin string

// inNetns is set in the environment of the test binary re-run inside its
// own network namespace, where the gateway binds ports 80 and 443 and
// each stand-in Pod has an address, without touching the machine's.
const inNetns = "FLEXGW_CONFORMANCE_NETNS"

// TestMain builds the gateway from the main module (with its own
// dependency versions, as shipped), then runs the tests again inside a new
// network namespace (unshare --net: root only) with the binary's path.
func TestMain(m *testing.M) {
	if bin := os.Getenv(inNetns); bin != "" {
		flexgwBin = bin
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "ip link set lo up: %v %s\n", err, out)
			os.Exit(1)
		}
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "flexgw-conformance")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin := filepath.Join(dir, "flexgw")
	build := exec.Command("go", "build", "-o", bin, "./cmd/flexgw")
	build.Dir = filepath.Join("..", "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building flexgw:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// Nothing inside the namespace reaches the network: go list (the CRDs'
	// directory) reads the module cache only.
	run := exec.Command("unshare", append([]string{"--net", "--", os.Args[0]}, os.Args[1:]...)...)
	run.Env = append(os.Environ(), inNetns+"="+bin, "GOPROXY=off")
	run.Stdin, run.Stdout, run.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = run.Run()
	os.RemoveAll(dir)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "unshare --net (the suite needs root for its own network namespace):", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// coreFeatures are the GATEWAY-HTTP profile's core features: Gateway,
// ReferenceGrant and HTTPRoute.
var coreFeatures = []features.FeatureName{features.SupportGateway, features.SupportReferenceGrant, features.SupportHTTPRoute}

// TestConformance runs every conformance test of the core features and
// writes the result of each to $FLEXGW_CONFORMANCE_RESULTS (a Markdown
// table) when set. It fails when any test fails: it is a report, run by
// `make conformance`, not part of `make test`.
func TestConformance(t *testing.T) {
	cl := kubetest.Start(t)
	c := kubetest.NewClient(t, cl.Kubeconfig)
	c.InstallCRDs(t, filepath.Join("..", "..", "charts", "flexgw", "crds"))
	c.InstallCRDs(t, gatewayAPICRDs(t))
	c.MustApply(t, `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: flexgw
spec:
  controllerName: flexgw.io/gateway-controller
`)

	// The base Gateways listen on 80 and 443: the gateway binds those ports
	// on loopback (Gateway listeners bind the --ingress-address host) of
	// the test's network namespace and writes 127.0.0.1 into Gateway
	// status, where the suite sends requests.
	gatewaytest.Start(t, flexgwBin, []string{"run", "--kubernetes", "--kubeconfig", cl.Kubeconfig,
		"--admin", "127.0.0.1:0", "--access-log", "off", "--state-dir", t.TempDir(),
		"--dataplane", "builtin", "--ebpf", "off", "--drain-timeout", "1s",
		"--ingress-address", fmt.Sprintf("http://127.0.0.1:%d", kubetest.FreePort(t)),
		"--publish-address", "127.0.0.1"}, gatewaytest.Options{Timeout: 2 * time.Minute})

	rest, err := clientcmd.BuildConfigFromFlags("", cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	si := &standIn{cs: kubernetes.NewForConfigOrDie(rest), pods: map[string]*echoPod{}, addIP: func(ip string) error {
		if out, err := exec.Command("ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
			return fmt.Errorf("ip addr add %s: %v %s", ip, err, out)
		}
		return nil
	}}
	wg.Add(1)
	go func() { defer wg.Done(); si.run(ctx, t) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	t.Setenv("KUBECONFIG", cl.Kubeconfig)
	opts := conformance.DefaultOptions(t)
	opts.GatewayClassName = "flexgw"
	if len(opts.SupportedFeatures) == 0 {
		opts.SupportedFeatures = coreFeatures
	}
	// Failing tests wait for their full timeouts; shorter ones keep a run
	// with many failures within minutes. flexgw reloads in about a second.
	opts.TimeoutConfig.GatewayMustHaveAddress = 60 * time.Second
	opts.TimeoutConfig.GatewayMustHaveCondition = 60 * time.Second
	opts.TimeoutConfig.GWCMustBeAccepted = 60 * time.Second
	opts.TimeoutConfig.NamespacesMustBeReady = 120 * time.Second
	opts.TimeoutConfig.MaxTimeToConsistency = 20 * time.Second
	for _, d := range []*time.Duration{&opts.TimeoutConfig.GatewayStatusMustHaveListeners, &opts.TimeoutConfig.GatewayListenersMustHaveConditions,
		&opts.TimeoutConfig.HTTPRouteMustNotHaveParents, &opts.TimeoutConfig.HTTPRouteMustHaveCondition,
		&opts.TimeoutConfig.RouteMustHaveParents, &opts.TimeoutConfig.LatestObservedGenerationSet} {
		*d = 30 * time.Second
	}

	var mu sync.Mutex
	results := map[string]string{}
	opts.Hook = func(t *testing.T, test suite.ConformanceTest, _ *suite.ConformanceTestSuite) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case t.Failed():
			results[test.ShortName] = "fail"
		case t.Skipped():
			results[test.ShortName] = "skip"
		default:
			results[test.ShortName] = "pass"
		}
	}
	t.Cleanup(func() { report(t, results) })
	conformance.RunConformanceWithOptions(t, opts)
}

// gatewayAPICRDs copies the standard-channel CRDs of the Gateway API
// module the suite comes from into a directory of their own (the
// module's holds a ValidatingAdmissionPolicy beside them).
func gatewayAPICRDs(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("go list sigs.k8s.io/gateway-api: %v", err)
	}
	std := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	files, _ := filepath.Glob(filepath.Join(std, "gateway.networking.k8s.io_*.yaml"))
	dir := t.TempDir()
	for _, f := range files {
		if strings.Contains(filepath.Base(f), "_vap_") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// report logs the pass/fail list and writes it as a Markdown table.
// Skipped tests (features outside the supported set) are only counted.
func report(t *testing.T, results map[string]string) {
	names := make([]string, 0, len(results))
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("| test | result |\n| --- | --- |\n")
	count := map[string]int{}
	for _, n := range names {
		// Tests of features outside the supported set skip: counted only.
		if results[n] != "skip" {
			fmt.Fprintf(&b, "| %s | %s |\n", n, results[n])
		}
		count[results[n]]++
	}
	t.Logf("conformance results:\n%s", b.String())
	if p := os.Getenv("FLEXGW_CONFORMANCE_RESULTS"); p != "" {
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	// The plain closing line CI and humans read.
	fmt.Printf("conformance: %d passed, %d failed, %d skipped\n", count["pass"], count["fail"], count["skip"])
}
