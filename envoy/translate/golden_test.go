package translate

import (
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	"github.com/flexgw/flexgw/envoy/internal/protoyaml"
	"github.com/flexgw/flexgw/internal/testutil"
)

// goldenYAML renders a Result as YAML: every resource through protojson
// (field order is the proto's), then re-encoded as block YAML so diffs read
// line by line.
func goldenYAML(t testing.TB, r *Result) []byte {
	t.Helper()
	var doc yaml.Node
	doc.Kind = yaml.MappingNode
	add := func(parent *yaml.Node, key string, value *yaml.Node) {
		parent.Content = append(parent.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, value)
	}
	section := func(res *Resources) *yaml.Node {
		n := &yaml.Node{Kind: yaml.MappingNode}
		list := func(key string, msgs []proto.Message) {
			seq := &yaml.Node{Kind: yaml.SequenceNode}
			for _, m := range msgs {
				seq.Content = append(seq.Content, protoNode(t, m))
			}
			add(n, key, seq)
		}
		list("listeners", toMsgs(res.Listeners))
		list("routes", toMsgs(res.Routes))
		list("clusters", toMsgs(res.Clusters))
		list("endpoints", toMsgs(res.Endpoints))
		list("secrets", toMsgs(res.Secrets))
		return n
	}
	add(&doc, "envoy", section(&r.Envoy))
	add(&doc, "grpc", section(&r.GRPC))
	warn := &yaml.Node{Kind: yaml.SequenceNode}
	for _, w := range r.Warnings {
		warn.Content = append(warn.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: w})
	}
	add(&doc, "warnings", warn)
	out, err := protoyaml.Encode(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func toMsgs[T proto.Message](xs []T) []proto.Message {
	out := make([]proto.Message, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func protoNode(t testing.TB, m proto.Message) *yaml.Node {
	t.Helper()
	n, err := protoyaml.Node(m)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", "out", name+".yaml"), got)
}
