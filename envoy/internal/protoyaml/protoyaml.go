// Package protoyaml renders protobuf messages as block YAML with the
// proto's field names and order: the form Envoy's own docs and bootstrap
// files use, and a stable one for golden files.
package protoyaml

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Node converts m to a YAML node (Any fields expanded with "@type").
func Node(m proto.Message) (*yaml.Node, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("protoyaml: %w", err)
	}
	// protojson's whitespace is deliberately unstable; compacting and
	// re-parsing makes the YAML deterministic.
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		return nil, fmt.Errorf("protoyaml: %w", err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(c.Bytes(), &n); err != nil {
		return nil, fmt.Errorf("protoyaml: %w", err)
	}
	blockStyle(&n)
	return n.Content[0], nil
}

// Marshal renders m as a YAML document.
func Marshal(m proto.Message) ([]byte, error) {
	n, err := Node(m)
	if err != nil {
		return nil, err
	}
	return Encode(n)
}

// Encode writes a node with two-space indentation.
func Encode(n *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("protoyaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("protoyaml: %w", err)
	}
	return buf.Bytes(), nil
}

// blockStyle drops JSON's flow style; strings that would read back as
// another type stay quoted.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && needsQuote(n.Value) {
		n.Style = yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

func needsQuote(s string) bool {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return true
	}
	str, isStr := v.(string)
	return !isStr || str != s
}
