package kube

import (
	"encoding/base64"
	"os"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Secrets as $VAR variables. A conf.d resolves `$NAME` from the process
// environment; in a cluster the values a resource needs (a TLS context's
// key, a password) live in Secrets, which a pod's environment only picks up
// on restart. So the source watches the Secrets labelled VariablesLabel and
// resolves a resource's variables from the labelled Secrets of its own
// namespace first — a resource never reads another namespace's Secret —
// and, for resources of the gateway's own namespace only (the chart's
// Configuration with logging.secretEnv and the Redis password), from the
// process environment: the pod's environment holds the gateway's own
// secrets (the admin token), which a resource of another namespace could
// otherwise copy into a header sent upstream. A change to such a Secret
// reloads like a change to a resource.
const (
	// VariablesLabel (value "true") marks a Secret whose keys are
	// variables for the Flex resources of its namespace.
	VariablesLabel = "flexgw.io/variables"
	// VariablePrefixAnnotation prefixes the variable names of a Secret, so
	// two kubernetes.io/tls Secrets (both with keys tls.crt and tls.key)
	// can be told apart: prefix SHOP_ gives $SHOP_TLS_CRT and $SHOP_TLS_KEY.
	VariablePrefixAnnotation = "flexgw.io/variable-prefix"
)

// VariableName is the variable a Secret key becomes: the prefix and the
// key, upper-cased, every character a variable name cannot hold ('.', '-')
// turned into '_'. An empty result, or one starting with a digit, is not a
// name.
func VariableName(prefix, key string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToUpper(prefix + key) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	n := b.String()
	return n, n != "" && (n[0] < '0' || n[0] > '9')
}

// variables returns the variables of each namespace from the labelled
// Secrets. Where two Secrets of a namespace define the same name, the one
// whose name sorts first wins and the clash is logged.
func (s *Source) variables() map[string]map[string]string {
	out := map[string]map[string]string{}
	st := s.stores["Secret"]
	if st == nil {
		return out
	}
	objs := st.List()
	secrets := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		secrets = append(secrets, o.(*unstructured.Unstructured))
	}
	sort.Slice(secrets, func(i, j int) bool {
		if secrets[i].GetNamespace() != secrets[j].GetNamespace() {
			return secrets[i].GetNamespace() < secrets[j].GetNamespace()
		}
		return secrets[i].GetName() < secrets[j].GetName()
	})
	from := map[string]string{}
	for _, sec := range secrets {
		ns := sec.GetNamespace()
		if sec.GetLabels()[VariablesLabel] != "true" {
			continue
		}
		data, _, _ := unstructured.NestedStringMap(sec.Object, "data")
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		prefix := sec.GetAnnotations()[VariablePrefixAnnotation]
		for _, k := range keys {
			name, ok := VariableName(prefix, k)
			if !ok {
				s.log.Warn("Secret key is not a variable name; ignored", "secret", ns+"/"+sec.GetName(), "key", k)
				continue
			}
			v, err := base64.StdEncoding.DecodeString(data[k])
			if err != nil {
				continue // the API server stores data base64-encoded; never happens
			}
			if out[ns] == nil {
				out[ns] = map[string]string{}
			}
			id := ns + "/" + name
			if prev, dup := from[id]; dup {
				s.log.Warn("variable defined by two Secrets; the first by name wins", "variable", name,
					"namespace", ns, "used", prev, "ignored", sec.GetName())
				continue
			}
			from[id] = sec.GetName()
			out[ns][name] = string(v)
		}
	}
	return out
}

// lookupIn resolves a variable from vars, then (withEnv) the process
// environment.
func lookupIn(vars map[string]string, withEnv bool) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if v, ok := vars[name]; ok {
			return v, true
		}
		if !withEnv {
			return "", false
		}
		return os.LookupEnv(name)
	}
}

// noVariables resolves no variable: what a document generated from
// routing resources and Secrets uses, so their text never reads the
// gateway's environment.
func noVariables(string) (string, bool) { return "", false }
