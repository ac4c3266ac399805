package envoy

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// Detect decides whether the Envoy data plane can run, for
// --dataplane auto: pathFlag (--envoy-path) when set, else an "envoy" on
// PATH. why is one sentence for the log saying which and why.
func Detect(pathFlag string) (path, why string, ok bool) {
	if pathFlag != "" {
		if err := executable(pathFlag); err != nil {
			return "", fmt.Sprintf("--envoy-path %s is not usable (%v); using the built-in data plane", pathFlag, err), false
		}
		return pathFlag, fmt.Sprintf("using Envoy at %s (--envoy-path)", pathFlag), true
	}
	p, err := exec.LookPath("envoy")
	if err != nil {
		return "", "no envoy binary on PATH and no --envoy-path; using the built-in data plane", false
	}
	return p, fmt.Sprintf("using Envoy at %s (found on PATH)", p), true
}

func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return errors.New("is not executable")
	}
	return nil
}
