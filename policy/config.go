package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/flexgw/flexgw/ir"
)

// ErrInvalidConfig is wrapped by every configuration error of a policy.
var ErrInvalidConfig = errors.New("invalid policy configuration")

// FieldError names the offending field of a policy configuration.
type FieldError struct {
	// Field is the path under config, e.g. "rateLimits[0].maximumRequests".
	Field  string
	Reason string
	// Err is the underlying error, if any (a PEM or file error).
	Err error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "config: " + e.Reason
	}
	return "config." + e.Field + ": " + e.Reason
}

// Unwrap lets callers test errors.Is(err, ErrInvalidConfig) and reach
// the underlying error.
func (e *FieldError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidConfig, e.Err}
	}
	return []error{ErrInvalidConfig}
}

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func fieldWrap(field string, err error) error {
	return &FieldError{Field: field, Reason: err.Error(), Err: err}
}

// decode parses a policy configuration into v. Unknown fields are ignored,
// as Flex ignores them, so a Flex conf.d with fields flexgw does not model
// still loads; type errors name the field.
func decode(raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		raw = []byte("{}")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fieldErr(te.Field, "must be %s, not %s", jsonKind(te.Type.Kind().String()), te.Value)
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fieldErr("", "not valid JSON at offset %d: %v", se.Offset, err)
		}
		return fieldWrap("", err)
	}
	return nil
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "an integer"
	case strings.HasPrefix(k, "float"):
		return "a number"
	case k == "bool":
		return "true or false"
	case k == "string":
		return "a string"
	case k == "slice":
		return "a list"
	case k == "struct", k == "map":
		return "an object"
	}
	return k
}

// Check validates one policy: its name must be registered (or be one of
// the config-shaping policies) and its configuration valid. The config
// compiler calls it through ir.CompileOptions.CheckPolicy.
func Check(p *ir.Policy) error {
	d, ok := Lookup(p.Name)
	if !ok {
		return fmt.Errorf("policy %q: unknown policy (known: %s): %w", p.Name, strings.Join(Names(), ", "), ErrInvalidConfig)
	}
	if err := d.Validate(p.Config); err != nil {
		return fmt.Errorf("policy %q: %w", p.Name, err)
	}
	return nil
}

// errorBody is the JSON body of every response a policy writes itself.
type errorBody struct {
	Error  string `json:"error"`
	Policy string `json:"policy"`
}

// deny records outcome for the request and writes a JSON error response.
// hdr holds extra response headers (WWW-Authenticate, Retry-After, ...).
func deny(w http.ResponseWriter, r *http.Request, policy, outcome string, status int, msg string, hdr ...string) {
	Decide(r, policy, outcome)
	h := w.Header()
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	b, _ := json.Marshal(errorBody{Error: msg, Policy: policy})
	_, _ = w.Write(append(b, '\n'))
}
