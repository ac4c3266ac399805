package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Docker cannot run here: these tests check the Dockerfile, the compose
// file and what they reference statically, with the real tools where one
// exists (flexgw validate, promtool).

// dockerStage is one FROM stage of the Dockerfile: its instructions.
type dockerStage struct {
	name  string
	lines []string // instruction lines, continuations joined
}

func dockerStages(t *testing.T) []dockerStage {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	joined := strings.ReplaceAll(string(b), "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "FROM ") {
			f := strings.Fields(line)
			stages = append(stages, dockerStage{name: f[len(f)-1]})
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
		}
	}
	return stages
}

func (s dockerStage) get(instr string) []string {
	var out []string
	for _, l := range s.lines {
		if v, ok := strings.CutPrefix(l, instr+" "); ok {
			out = append(out, v)
		}
	}
	return out
}

func jsonArgs(t *testing.T, s string) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: not an exec-form JSON array: %v", s, err)
	}
	return v
}

// TestDockerImages: both runtime images have flexgw as entrypoint and run
// in CMD (so `docker run IMAGE run ... --ebpf on` keeps every flag), expose
// the ports their configuration listens on, keep state in a volume, check
// their health with the binary they ship, and copy only files that exist.
func TestDockerImages(t *testing.T) {
	bin := binary(t)
	stages := dockerStages(t)
	runtime := 0
	for _, st := range stages {
		for _, c := range st.get("COPY") {
			f := strings.Fields(c)
			if slices.ContainsFunc(f, func(s string) bool { return strings.HasPrefix(s, "--from=") }) {
				continue
			}
			for _, src := range f[:len(f)-1] {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("stage %s: COPY %s: %v", st.name, src, err)
				}
			}
		}
		entry := st.get("ENTRYPOINT")
		if len(entry) == 0 {
			continue
		}
		runtime++
		if got := jsonArgs(t, entry[0]); !slices.Equal(got, []string{"/usr/local/bin/flexgw"}) {
			t.Errorf("stage %s: ENTRYPOINT %v, want [/usr/local/bin/flexgw]", st.name, got)
		}
		cmd := st.get("CMD")
		if len(cmd) != 1 {
			t.Fatalf("stage %s: want one CMD, have %d", st.name, len(cmd))
		}
		args := jsonArgs(t, cmd[0])
		if args[0] != "run" {
			t.Errorf("stage %s: CMD %v does not start with run", st.name, args)
		}
		// The CMD's flags are the binary's: --help after them parses them
		// all (an unknown flag or a stray word would fail first).
		if out, err := exec.Command(bin, append(append([]string{}, args...), "--help")...).CombinedOutput(); err != nil {
			t.Errorf("stage %s: flexgw %v: %v\n%s", st.name, args, err, out)
		}
		state := ""
		for i, a := range args {
			if a == "--state-dir" && i+1 < len(args) {
				state = args[i+1]
			}
		}
		if vols := st.get("VOLUME"); state == "" || !slices.Contains(vols, state) {
			t.Errorf("stage %s: --state-dir %q is not a VOLUME (%v)", st.name, state, vols)
		}
		hc := st.get("HEALTHCHECK")
		if len(hc) != 1 || !strings.Contains(hc[0], `CMD ["/usr/local/bin/flexgw", "status", "--ready"]`) {
			t.Errorf("stage %s: HEALTHCHECK %v, want flexgw status --ready", st.name, hc)
		}
		var exposed []string
		for _, e := range st.get("EXPOSE") {
			exposed = append(exposed, strings.Fields(e)...)
		}
		for _, want := range append(configPorts(t, "docker/conf.d"), "8082", "9180") {
			if !slices.Contains(exposed, want) {
				t.Errorf("stage %s: port %s not exposed (%v)", st.name, want, exposed)
			}
		}
		env := strings.Join(st.get("ENV"), "\n")
		if !strings.Contains(env, "FLEXGW_DEMO_UPSTREAM=http://upstream:9000") {
			t.Errorf("stage %s: no FLEXGW_DEMO_UPSTREAM for the image's demo API", st.name)
		}
	}
	if runtime != 2 {
		t.Errorf("%d runtime stages, want 2 (envoy, builtin)", runtime)
	}
	// The image's configuration is valid as the image runs it.
	cmd := exec.Command(bin, "validate", "docker/conf.d")
	cmd.Env = append(os.Environ(), "FLEXGW_DEMO_UPSTREAM=http://upstream:9000")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("flexgw validate docker/conf.d: %v\n%s", err, out)
	}
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "bin/"} {
		if !strings.Contains(string(ignore), want+"\n") {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
	for _, kept := range []string{"deploy", "examples", "cmd"} {
		if strings.Contains("\n"+string(ignore), "\n"+kept) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", kept)
		}
	}
}

var listenPort = regexp.MustCompile(`(?m)^\s+address:\s+https?://[^/\s:]+:(\d+)`)

// configPorts lists the ports the ApiInstances of a config dir listen on.
func configPorts(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	var ports []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "kind: ApiInstance") {
			continue
		}
		for _, m := range listenPort.FindAllStringSubmatch(string(b), -1) {
			ports = append(ports, m[1])
		}
	}
	if len(ports) == 0 {
		t.Fatalf("no listener ports in %s", dir)
	}
	return ports
}

type composeFile struct {
	Services map[string]struct {
		Build *struct {
			Context string `yaml:"context"`
			Target  string `yaml:"target"`
		} `yaml:"build"`
		Image       string            `yaml:"image"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Entrypoint  []string          `yaml:"entrypoint"`
		DependsOn   []string          `yaml:"depends_on"`
		Configs     []struct {
			Source string `yaml:"source"`
			Target string `yaml:"target"`
		} `yaml:"configs"`
	} `yaml:"services"`
	Configs map[string]map[string]string `yaml:"configs"`
	Volumes map[string]any               `yaml:"volumes"`
}

// TestComposeFile: the compose file's build target, mounted files, ports
// and wiring match the Dockerfile and configuration they use; its
// Prometheus configuration passes promtool; the gateway's configuration
// with the mounted file passes flexgw validate.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("docker/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gateway", "upstream", "redis", "prometheus"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("compose file has no %s service", name)
		}
	}
	gw := c.Services["gateway"]
	if gw.Build == nil || gw.Build.Target != "builtin" {
		t.Fatalf("gateway build: %+v", gw.Build)
	}
	if _, err := os.Stat(filepath.Join("docker", gw.Build.Context, "Dockerfile")); err != nil {
		t.Errorf("build context: %v", err)
	}
	var builtin dockerStage
	for _, st := range dockerStages(t) {
		if st.name == gw.Build.Target {
			builtin = st
		}
	}
	var exposed []string
	for _, e := range builtin.get("EXPOSE") {
		exposed = append(exposed, strings.Fields(e)...)
	}
	for name, svc := range c.Services {
		for _, v := range svc.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join("docker", src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s mounts volume %s, not declared", name, src)
			}
			if name == "gateway" && strings.HasPrefix(dst, "/var/lib/flexgw") && !slices.Contains(builtin.get("VOLUME"), "/var/lib/flexgw") {
				t.Errorf("state volume %s is not the image's VOLUME", dst)
			}
		}
		for _, cfg := range svc.Configs {
			if _, ok := c.Configs[cfg.Source]; !ok {
				t.Errorf("%s uses config %s, not declared", name, cfg.Source)
			}
		}
		if svc.Image == "flexgw" && len(svc.Entrypoint) > 0 && !strings.Contains(strings.Join(builtin.get("COPY"), " "), filepath.Base(svc.Entrypoint[0])) {
			t.Errorf("%s runs %s, which the image does not ship", name, svc.Entrypoint[0])
		}
	}
	for _, p := range gw.Ports {
		_, container, _ := strings.Cut(p, ":")
		if !slices.Contains(exposed, container) {
			t.Errorf("gateway publishes %s, not exposed by the image (%v)", p, exposed)
		}
	}
	// The demo upstream listens where the gateway's demo API sends.
	up := c.Services["upstream"]
	if addr := up.Entrypoint[len(up.Entrypoint)-1]; !strings.HasSuffix(gw.Environment["FLEXGW_DEMO_UPSTREAM"], ":"+strings.Split(addr, ":")[1]) {
		t.Errorf("upstream listens on %s, gateway sends to %s", addr, gw.Environment["FLEXGW_DEMO_UPSTREAM"])
	}
	// The gateway's configuration in compose: the image's plus the mount.
	dir := t.TempDir()
	for _, src := range []string{"docker/conf.d/demo.yaml", "docker/compose.conf.d/shared-storage.yaml"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(binary(t), "validate", dir)
	cmd.Env = append(os.Environ(), "FLEXGW_DEMO_UPSTREAM="+gw.Environment["FLEXGW_DEMO_UPSTREAM"])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("flexgw validate (compose configuration): %v\n%s", err, out)
	}
	// Prometheus: promtool checks the file with the token file in place.
	prom, err := os.ReadFile("docker/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(prom), "/etc/prometheus/flexgw-token") || c.Services["prometheus"].Configs[0].Target != "/etc/prometheus/flexgw-token" {
		t.Error("prometheus.yml and the compose config disagree on the token file")
	}
	if !strings.Contains(string(prom), `"gateway:9180"`) || gw.Environment["FLEXGW_ADMIN_HOSTS"] != "gateway" {
		t.Error("Prometheus scrapes gateway:9180, which the gateway must accept as a Host (FLEXGW_ADMIN_HOSTS)")
	}
	pf := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(pf, []byte(strings.ReplaceAll(string(prom), "/etc/prometheus/flexgw-token", tok)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "config", pf).CombinedOutput(); err != nil {
		t.Errorf("promtool check config prometheus.yml: %v\n%s", err, out)
	}
}
