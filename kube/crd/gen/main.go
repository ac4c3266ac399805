// Command gen writes the CRD files of package crd into a directory
// (charts/flexgw/crds), replacing stale ones.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flexgw/flexgw/kube/crd"
)

func main() {
	out := flag.String("out", "charts/flexgw/crds", "directory the CRD files are written to")
	flag.Parse()
	files, err := crd.Files()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crd gen:", err)
		os.Exit(1)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "crd gen:", err)
		os.Exit(1)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "crd gen:", err)
			os.Exit(1)
		}
	}
}
