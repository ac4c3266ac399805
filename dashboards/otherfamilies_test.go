package dashboards

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// otherFamilySources are the files that declare the families of
// otherFamilies (see its comment).
var otherFamilySources = []string{
	"../logpipe/logmetrics/logmetrics.go",
	"../ebpf/collector.go",
	"../sharedstore/sharedstore.go",
	"../envoy/xds/metrics.go",
	"../envoy/stats/stats.go",
}

// TestOtherFamiliesMatchTheirDeclarations keeps the hand-written
// otherFamilies list honest: every family it lists is declared, as a
// quoted name, in one of the collectors' sources, and each of its labels
// is quoted in that declaration (within the next few lines). A renamed
// metric or label there fails here instead of leaving the dashboards'
// PromQL test checking against a stale list.
func TestOtherFamiliesMatchTheirDeclarations(t *testing.T) {
	var src []string
	for _, p := range otherFamilySources {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		src = append(src, string(b))
	}
	for name, f := range otherFamilies {
		quoted := strconv.Quote(name)
		found := false
		for _, s := range src {
			i := strings.Index(s, quoted)
			if i < 0 {
				continue
			}
			found = true
			// The declaration: from the name to the end of its
			// NewDesc / NewCounterVec call, a few lines at most.
			decl := s[i:min(len(s), i+400)]
			if end := strings.Index(decl, "\n\n"); end > 0 {
				decl = decl[:end]
			}
			if end := strings.Index(decl, "prometheus.New"); end > 0 {
				decl = decl[:end] // the next declaration starts here
			}
			for _, l := range f.labels {
				if !strings.Contains(decl, strconv.Quote(l)) {
					t.Errorf("%s: label %q not in its declaration:\n%s", name, l, decl)
				}
			}
		}
		if !found {
			t.Errorf("%s is listed in otherFamilies but declared in none of %v", name, otherFamilySources)
		}
	}
}
