package kube_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flexgw/flexgw/kube/kubetest"
)

var fence = regexp.MustCompile("(?s)```(yaml|sh)( kubernetes)?\n(.*?)```")

// TestDocsKubernetes runs docs/kubernetes.md against a real API server:
// every YAML block goes through `kubectl apply --dry-run=server`, then
// `kubectl apply` (the API server must accept it), every shell line runs
// with the real helm, kubectl and flexgw, in page order, each helm
// install/upgrade line after a `helm lint --strict` with the same values. Port
// 8080 is replaced by a free port, and a gateway started by the page's
// `flexgw run` line writes the status `kubectl wait` waits for.
func TestDocsKubernetes(t *testing.T) {
	t.Parallel() // own API server, gateway and ports: independent of the others
	page, err := os.ReadFile("../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	cl := kubetest.Start(t)
	c := kubetest.NewClient(t, cl.Kubeconfig)
	installGatewayAPI(t, c)
	// The backend the page's Ingress and HTTPRoute name, as a cluster
	// would have it (a Service and its endpoints).
	c.MustApply(t, backendService(t, "default", "web"))

	ports := map[string]string{}
	taken := map[string]bool{}
	for _, p := range []string{"8080", "8081", "8082", "8443", "8444", "8445"} {
		// Distinct: a port just closed can be handed out again, and two
		// of the page's addresses on one port are a config conflict.
		for ports[p] == "" || taken[ports[p]] {
			ports[p] = strconv.Itoa(kubetest.FreePort(t))
		}
		taken[ports[p]] = true
	}
	work := t.TempDir()
	// The certificate the page's `kubectl create secret tls` reads.
	crt, key := kubetest.SelfSigned(t, "shop")
	for f, b := range map[string]string{"shop.crt": crt, "shop.key": key} {
		if err := os.WriteFile(filepath.Join(work, f), []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".kube"), 0o755); err != nil {
		t.Fatal(err)
	}
	kc, _ := os.ReadFile(cl.Kubeconfig)
	if err := os.WriteFile(filepath.Join(home, ".kube", "config"), kc, 0o600); err != nil {
		t.Fatal(err)
	}
	repo, _ := filepath.Abs("..")
	bin := t.TempDir()
	for _, tool := range []string{"helm", "kubectl"} {
		if err := os.Symlink(kubetest.Tool(t, tool), filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(flexgwBin, filepath.Join(bin, "flexgw")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "HOME="+home, "KUBECONFIG="+cl.Kubeconfig, "PATH="+bin+":"+os.Getenv("PATH"),
		"HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)

	var lastYAML string
	served := false
	blocks := fence.FindAllStringSubmatch(string(page), -1)
	if len(blocks) < 8 {
		t.Fatalf("only %d snippets found", len(blocks))
	}
	// One pass: a free port substituted for one of the page's may contain
	// another of the page's ports (48082), which must stay as it is.
	var pairs []string
	for from, to := range ports {
		pairs = append(pairs, from, to)
	}
	substitute := strings.NewReplacer(pairs...)
	for _, b := range blocks {
		body := substitute.Replace(b[3])
		run := func(args ...string) string {
			t.Helper()
			cmd := exec.Command(filepath.Join(bin, args[0]), args[1:]...)
			cmd.Dir, cmd.Env = work, env
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("docs command %q: %v\n%s\n(last YAML block:\n%s)", strings.Join(args, " "), err, out, lastYAML)
			}
			return string(out)
		}
		if b[1] == "yaml" {
			lastYAML = body
			// kubectl apply -f NAME.yaml reads the block above it.
			name := kubetest.Decode(t, body)[0].GetName()
			file := filepath.Join(work, name+".yaml")
			if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			run("kubectl", "apply", "--dry-run=server", "-f", file)
			run("kubectl", "apply", "-f", file)
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			args := strings.Fields(strings.ReplaceAll(line, "charts/flexgw", filepath.Join(repo, "charts", "flexgw")))
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, "~", home)
			}
			if args[0] == "flexgw" && args[1] == "run" {
				// A server: started, checked serving, and left running for
				// the status the next snippets wait for.
				startGateway(t, args[4], append(args[5:], "--ingress-address", "http://127.0.0.1:"+ports["8080"])...)
				continue
			}
			if args[0] == "kubectl" && args[1] == "wait" {
				args = append(args, "--timeout=120s")
			}
			if args[0] == "helm" && (args[1] == "install" || args[1] == "upgrade") {
				var sets []string
				for i := 0; i+1 < len(args); i++ {
					if args[i] == "--set" {
						sets = append(sets, args[i], args[i+1])
					}
				}
				run(append([]string{"helm", "lint", "--strict", args[3]}, sets...)...)
			}
			uninstall := args[0] == "helm" && args[1] == "uninstall"
			if uninstall {
				// What the page promises serves while the chart is installed
				// (its IngressClass and GatewayClass go with it).
				waitServed(t, "http://127.0.0.1:"+ports["8082"]+"/v1/x", "200 web /v1/x")
				if loc := redirectOf(t, "http://127.0.0.1:"+ports["8082"]+"/old/a?b=1"); loc != "301 https://shop.example.com/new/a?b=1" {
					t.Fatalf("the page's redirect: %s", loc)
				}
				for _, p := range []string{"8443", "8444", "8445"} { // ApiInstance, Ingress, Gateway
					if cn := servedCN("127.0.0.1:" + ports[p]); cn != "shop" {
						t.Fatalf("the page's HTTPS address %s serves certificate %q, want the Secret's (shop)", p, cn)
					}
				}
				kubetest.Eventually(t, time.Minute, "Ingress of the page", func() (bool, string) {
					got := getHost("http://127.0.0.1:"+ports["8080"]+"/api/x", "shop.example.com")
					return got == "200 web /api/x", got
				})
				served = true
			}
			t.Logf("$ %s\n%s", line, run(args...))
			if uninstall {
				// "helm uninstall leaves the CRDs and your resources in place".
				run("kubectl", "get", "crd", "apiinstances.gateway.mulesoft.com")
				run("kubectl", "get", "apiinstance", "orders")
			}
		}
	}
	if !served {
		t.Fatal("the page never uninstalls the chart: the serving checks did not run")
	}
}

// redirectOf is "STATUS Location" of a GET not following redirects.
func redirectOf(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	return fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Location"))
}
