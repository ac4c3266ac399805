package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Options tune Load.
type Options struct {
	// LookupEnv resolves $VAR references; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
}

// LoadDir reads and validates every *.yaml / *.yml file of dir with the
// process environment. The error, when not nil, is an ErrorList.
func LoadDir(dir string) (*Set, error) {
	return Load(dir, Options{})
}

// Load reads (with ReadDir's rules) and validates every *.yaml / *.yml
// file of dir (not recursive), sorted by file name. It returns every
// problem found as an ErrorList. A directory without YAML files is a valid,
// empty Set.
func Load(dir string, opts Options) (*Set, error) {
	files, errs := ReadDir(dir)
	if len(files) == 0 && len(errs) > 0 && errs[0].File == dir {
		return nil, errs.Err() // the directory itself is unusable
	}
	set, err := Parse(files, opts)
	if set != nil {
		set.Dir = dir
	}
	if err != nil {
		var list ErrorList
		errors.As(err, &list)
		errs = append(errs, list...)
	}
	return set, errs.Err()
}

// File is one named YAML input of Parse.
type File struct {
	Name string
	Data []byte
	// LookupEnv, when set, resolves this file's $VAR references instead of
	// Options.LookupEnv: the Kubernetes source resolves a resource's
	// variables from the Secrets of its own namespace.
	LookupEnv func(name string) (string, bool)
}

// Parse decodes and validates files in the order given. The returned Set
// is usable for reporting even when err is not nil.
func Parse(files []File, opts Options) (*Set, error) {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	set := &Set{}
	var errs ErrorList
	for _, f := range files {
		set.Files = append(set.Files, f.Name)
		l := lookup
		if f.LookupEnv != nil {
			l = f.LookupEnv
		}
		parseFile(set, f, l, &errs)
	}
	validate(set, &errs)
	return set, errs.Err()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func parseFile(set *Set, f File, lookup func(string) (string, bool), errs *ErrorList) {
	dec := yaml.NewDecoder(bytes.NewReader(f.Data))
	// flex turns true at the first document that is a Flex resource. Until
	// then the file may be anything a symbolic link points at (a key, a
	// password file), and no error may quote what it holds.
	flex := false
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return
		}
		if err != nil {
			reason := strings.TrimPrefix(err.Error(), "yaml: ")
			e := &Error{File: f.Name}
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				e.Line, _ = strconv.Atoi(m[1])
				reason = m[2]
			}
			if !flex {
				reason = withoutQuotes(reason)
			}
			e.Reason = "invalid YAML: " + reason
			*errs = append(*errs, e)
			return // the decoder cannot resynchronise after a syntax error
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue // an empty document ("---" at the end of a file)
		}
		n := resolve(doc.Content[0])
		if n.Kind != yaml.MappingNode {
			parseResource(set, f.Name, n, lookup, errs) // "must be a map, got a list": no contents
			continue
		}
		if !isResource(n) {
			*errs = append(*errs, &Error{File: f.Name, Line: n.Line, Reason: "not a Flex Gateway resource: " +
				"a document must be a map with apiVersion " + V1Alpha1 + " and kind ApiInstance, Service, PolicyBinding or Configuration (contents not shown)"})
			continue
		}
		flex = true
		parseResource(set, f.Name, n, lookup, errs)
	}
}

// isResource reports whether a map declares itself a Flex resource: its apiVersion is gateway.mulesoft.com's or whose kind is one of
// Flex's. One of the two is enough for the document's own errors (a
// misspelt kind, a wrong version) to be reported with the values quoted.
func isResource(n *yaml.Node) bool {
	if strings.HasPrefix(peek(n, "apiVersion"), "gateway.mulesoft.com/") {
		return true
	}
	switch peek(n, "kind") {
	case KindApiInstance, KindService, KindPolicyBinding, KindConfiguration:
		return true
	}
	return false
}

// withoutQuotes cuts a YAML error reason at its first quoted excerpt of the
// input (yaml.v3 quotes anchor names and values with ', ` or ").
func withoutQuotes(reason string) string {
	if i := strings.IndexAny(reason, "'`\""); i >= 0 {
		return strings.TrimSpace(reason[:i]) + " (excerpt not shown: the file is not a Flex Gateway configuration)"
	}
	return reason
}

// parseResource decodes one document's apiVersion/kind/metadata and hands
// spec to the decoder of its kind.
func parseResource(set *Set, file string, n *yaml.Node, lookup func(string) (string, bool), errs *ErrorList) {
	meta := &Meta{File: file, Line: n.Line, Namespace: DefaultNamespace}
	d := &decoder{meta: meta, errs: errs, lookup: lookup}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "", "a document must be a map with apiVersion, kind, metadata and spec, got %s", kindName(n))
		return
	}
	// Peek at kind and name first so every error, even one about an
	// unknown field above them, names the resource.
	meta.Kind = peek(n, "kind")
	meta.Name = peek(resolve(child(n, "metadata")), "name")
	top := d.fields(n, "", "apiVersion", "kind", "metadata", "spec")
	kind, _ := d.raw(top["kind"].value, "kind")
	meta.Kind = kind
	md := d.fields(top["metadata"].value, "metadata", "name", "namespace", "labels", "annotations")
	meta.Name = ""
	if f, ok := md["name"]; ok {
		meta.Name, _ = d.str(f.value, "metadata.name")
	}
	switch kind {
	case KindApiInstance, KindService, KindPolicyBinding, KindConfiguration:
	case "":
		d.errorf(n, "kind", "required (one of ApiInstance, Service, PolicyBinding, Configuration)")
		return
	default:
		d.errorf(top["kind"].value, "kind", "unknown kind %q (expected ApiInstance, Service, PolicyBinding or Configuration)", kind)
		return
	}

	av, ok := top["apiVersion"]
	if !ok {
		d.errorf(n, "apiVersion", "required (%s)", V1Alpha1)
	} else {
		meta.APIVersion, _ = d.raw(av.value, "apiVersion")
		switch {
		case meta.APIVersion == V1Alpha1:
		// Flex's newer pages write PolicyBinding as v1beta1 too (outbound
		// message logging), with the same schema.
		case meta.APIVersion == V1Beta1 && (kind == KindConfiguration || kind == KindPolicyBinding):
		case meta.APIVersion == V1Beta1:
			d.errorf(av.value, "apiVersion", "%s is only valid for Configuration and PolicyBinding; use %s", V1Beta1, V1Alpha1)
		default:
			d.errorf(av.value, "apiVersion", "unsupported apiVersion %q (expected %s)", meta.APIVersion, V1Alpha1)
		}
	}

	if _, ok := top["metadata"]; !ok {
		d.errorf(n, "metadata", "required")
	} else {
		if meta.Name == "" {
			d.errorf(top["metadata"].value, "metadata.name", "required")
		} else if err := checkName(meta.Name); err != nil {
			d.errorf(md["name"].value, "metadata.name", "%v", err)
		}
		if f, ok := md["namespace"]; ok && !isNull(f.value) {
			ns, _ := d.str(f.value, "metadata.namespace")
			if err := checkName(ns); err != nil {
				d.errorf(f.value, "metadata.namespace", "%v", err)
			} else {
				meta.Namespace = ns
			}
		}
		if f, ok := md["labels"]; ok {
			meta.Labels = d.stringMap(f.value, "metadata.labels")
		}
	}

	spec, ok := top["spec"]
	if !ok || isNull(spec.value) {
		d.errorf(n, "spec", "required")
		return
	}
	switch kind {
	case KindApiInstance:
		set.APIs = append(set.APIs, d.apiInstance(spec.value))
	case KindService:
		set.Services = append(set.Services, d.service(spec.value))
	case KindPolicyBinding:
		set.Bindings = append(set.Bindings, d.binding(spec.value))
	case KindConfiguration:
		set.Configurations = append(set.Configurations, d.configuration(spec.value))
	}
}

// checkName rejects names that cannot be used as references or in
// derived names ("namespace/name", Envoy cluster names).
func checkName(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if strings.ContainsAny(s, "/ \t\r\n#") {
		return fmt.Errorf("%q must not contain '/', '#' or whitespace", s)
	}
	return nil
}

// stringMap decodes a map of scalars as strings.
func (d *decoder) stringMap(n *yaml.Node, path string) map[string]string {
	ps := d.pairs(n, path)
	if len(ps) == 0 {
		return nil
	}
	out := make(map[string]string, len(ps))
	for _, p := range ps {
		if v, ok := d.str(p.value, join(path, p.key.Value)); ok {
			out[p.key.Value] = v
		}
	}
	return out
}

// paramMap decodes logging output parameters: Fluent Bit sees every value
// as a string, and a key it repeats (the http output's header) is written
// as a list, as in Flex's Dynatrace example; its items are joined with
// newlines, which no Fluent Bit value contains, and each becomes one line
// of Fluent Bit's config again.
func (d *decoder) paramMap(n *yaml.Node, path string) map[string]string {
	ps := d.pairs(n, path)
	if len(ps) == 0 {
		return nil
	}
	out := make(map[string]string, len(ps))
	for _, p := range ps {
		at := join(path, p.key.Value)
		if v := resolve(p.value); v != nil && v.Kind == yaml.SequenceNode {
			items := d.strList(v, at)
			for i, it := range items {
				if strings.ContainsAny(it, "\r\n") {
					d.errorf(resolveItem(v, i), fmt.Sprintf("%s[%d]", at, i), "must be one line")
				}
			}
			out[p.key.Value] = strings.Join(items, "\n")
			continue
		}
		if v, ok := d.str(p.value, at); ok {
			out[p.key.Value] = v
		}
	}
	return out
}

// flatStringMap is stringMap that also accepts nested maps, flattened to
// dotted keys: Flex writes tracing's `resourceAttributes: {k: v}` nested,
// and the tracer reads `resourceAttributes.k`.
func (d *decoder) flatStringMap(n *yaml.Node, path string) map[string]string {
	out := map[string]string{}
	var walk func(n *yaml.Node, path, prefix string)
	walk = func(n *yaml.Node, path, prefix string) {
		for _, p := range d.pairs(n, path) {
			key, at := prefix+p.key.Value, join(path, p.key.Value)
			if v := resolve(p.value); v != nil && v.Kind == yaml.MappingNode {
				walk(v, at, key+".")
				continue
			}
			if v, ok := d.str(p.value, at); ok {
				out[key] = v
			}
		}
	}
	walk(n, path, "")
	if len(out) == 0 {
		return nil
	}
	return out
}

// child returns the value of key in mapping n, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// peek returns the scalar text of key in mapping n, or "".
func peek(n *yaml.Node, key string) string {
	if v := resolve(child(n, key)); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}
