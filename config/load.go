package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
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

// Load reads and validates every *.yaml / *.yml file of dir (not
// recursive), sorted by file name. It returns every problem found as an
// ErrorList.
func Load(dir string, opts Options) (*Set, error) {
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrorList{{File: dir, Reason: "configuration directory does not exist"}}
		}
		return nil, ErrorList{{File: dir, Reason: fmt.Sprintf("cannot read configuration directory: %v", err)}}
	}
	if !st.IsDir() {
		return nil, ErrorList{{File: dir, Reason: "not a directory (give the directory holding the *.yaml files)"}}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, ErrorList{{File: dir, Reason: fmt.Sprintf("cannot read configuration directory: %v", err)}}
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") {
			continue // editor swap files, ..data symlinks of Kubernetes volumes
		}
		if ext := filepath.Ext(n); ext != ".yaml" && ext != ".yml" {
			continue
		}
		if info, err := os.Stat(filepath.Join(dir, n)); err != nil || info.IsDir() {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, ErrorList{{File: dir, Reason: "no *.yaml or *.yml files in configuration directory"}}
	}
	files := make([]File, 0, len(names))
	var errs ErrorList
	for _, n := range names {
		path := filepath.Join(dir, n)
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &Error{File: path, Reason: fmt.Sprintf("cannot read: %v", err)})
			continue
		}
		files = append(files, File{Name: path, Data: data})
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
		parseFile(set, f, lookup, &errs)
	}
	validate(set, &errs)
	return set, errs.Err()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func parseFile(set *Set, f File, lookup func(string) (string, bool), errs *ErrorList) {
	dec := yaml.NewDecoder(bytes.NewReader(f.Data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return
		}
		if err != nil {
			e := &Error{File: f.Name, Reason: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				e.Line, _ = strconv.Atoi(m[1])
				e.Reason = "invalid YAML: " + m[2]
			}
			*errs = append(*errs, e)
			return // the decoder cannot resynchronise after a syntax error
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue // an empty document ("---" at the end of a file)
		}
		parseResource(set, f.Name, resolve(doc.Content[0]), lookup, errs)
	}
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
		case meta.APIVersion == V1Beta1 && kind == KindConfiguration:
		case meta.APIVersion == V1Beta1:
			d.errorf(av.value, "apiVersion", "%s is only valid for Configuration; use %s", V1Beta1, V1Alpha1)
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
