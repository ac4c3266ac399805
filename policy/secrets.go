package policy

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Secrets is implemented by every Definition: it names the configuration
// fields whose values must never leave the process — not through the
// admin API (/api/v1/config), not in logs, not in error messages. Paths are
// dotted JSON paths into the policy's config; "*" matches every key of a
// map or element of a list ("credentials.*.clientSecret"). A policy with
// no secrets returns an empty list, which is a declaration too:
// TestEveryPolicyDeclaresItsSecrets (agent) fails for a registered policy
// that does not implement Secrets, and RedactConfig hides the whole
// config of such a policy.
type Secrets interface {
	SecretFields() []string
}

// Redacted replaces a secret value in rendered configuration.
const Redacted = "[redacted]"

// SecretFields returns the secret paths policy name declares, and whether
// it declares them (false for unknown names and undeclared policies).
func SecretFields(name string) ([]string, bool) {
	d, ok := Lookup(name)
	if !ok {
		return nil, false
	}
	s, ok := d.(Secrets)
	if !ok {
		return nil, false
	}
	return s.SecretFields(), true
}

// RedactConfig returns config (decoded JSON) with the value at every
// secret path of policy name replaced by Redacted. The config of a policy
// that declares nothing, or of an unknown one, is replaced whole: what is
// not known to be safe is not shown.
func RedactConfig(name string, config any) any {
	paths, ok := SecretFields(name)
	if !ok {
		if config == nil {
			return nil
		}
		return Redacted + " (policy " + strconv.Quote(name) + " declares no secret fields)"
	}
	for _, p := range paths {
		redactPath(config, strings.Split(p, "."))
	}
	return config
}

func redactPath(v any, path []string) {
	if len(path) == 0 {
		return
	}
	key, rest := path[0], path[1:]
	visit := func(get func() any, set func(any)) {
		if len(rest) == 0 {
			if get() != nil {
				set(Redacted)
			}
			return
		}
		redactPath(get(), rest)
	}
	switch t := v.(type) {
	case map[string]any:
		for k := range t {
			if key == "*" || k == key {
				k := k
				visit(func() any { return t[k] }, func(x any) { t[k] = x })
			}
		}
	case []any:
		for i := range t {
			if key == "*" || key == strconv.Itoa(i) {
				i := i
				visit(func() any { return t[i] }, func(x any) { t[i] = x })
			}
		}
	}
}

// RedactRaw is RedactConfig on JSON text; text that is not JSON is
// replaced whole.
func RedactRaw(name string, raw json.RawMessage) json.RawMessage {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return json.RawMessage(strconv.Quote(Redacted))
	}
	out, err := json.Marshal(RedactConfig(name, v))
	if err != nil {
		return json.RawMessage(strconv.Quote(Redacted))
	}
	return out
}
