package policy

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy/internal/dw"
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
			field := indexedField(raw, te.Field, te.Value)
			return fieldErr(field, "must be %s, not %s", jsonKind(te.Type.Kind().String()), te.Value)
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fieldErr("", "not valid JSON at offset %d: %v", se.Offset, err)
		}
		return fieldWrap("", err)
	}
	return nil
}

// indexedField adds the array indices encoding/json leaves out of a type
// error's field ("rateLimits.maximumRequests" becomes
// "rateLimits[1].maximumRequests"): it finds the first value at that path
// whose JSON type is the one the error reports. Without a match the field
// is returned as it was.
func indexedField(raw json.RawMessage, field, value string) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if field == "" || dec.Decode(&v) != nil {
		return field
	}
	// value is the JSON type, and for numbers the literal: "number 1.5".
	if p, ok := findTyped(v, strings.Split(field, "."), value); ok {
		return strings.TrimPrefix(p, ".")
	}
	return field
}

func findTyped(v any, keys []string, value string) (string, bool) {
	if len(keys) == 0 {
		typ, lit, _ := strings.Cut(value, " ")
		if n, ok := v.(json.Number); ok && lit != "" {
			return "", typ == "number" && n.String() == lit
		}
		if jsonTypeOf(v) == typ {
			return "", true
		}
	}
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			if p, ok := findTyped(e, keys, value); ok {
				return fmt.Sprintf("[%d]", i) + p, true
			}
		}
	case map[string]any:
		if len(keys) == 0 {
			return "", false
		}
		child, ok := x[keys[0]]
		if !ok { // encoding/json matches keys case-insensitively
			for k, c := range x {
				if strings.EqualFold(k, keys[0]) {
					child, ok = c, true
					break
				}
			}
		}
		if ok {
			if p, ok := findTyped(child, keys[1:], value); ok {
				return "." + keys[0] + p, true
			}
		}
	}
	return "", false
}

// jsonTypeOf names v's JSON type as json.UnmarshalTypeError.Value does.
func jsonTypeOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
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
	// RequestID is the request's x-request-id (the data plane sets it
	// before policies run), so a client can quote the access-log line.
	RequestID string `json:"request_id,omitempty"`
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
	id := r.Header.Get("X-Request-Id")
	if id != "" {
		h.Set("X-Request-Id", id)
	}
	w.WriteHeader(status)
	b, _ := json.Marshal(errorBody{Error: msg, Policy: policy, RequestID: id})
	_, _ = w.Write(append(b, '\n'))
}

// compileExpr compiles a DataWeave template; field names the config field
// for errors.
func compileExpr(field, src string) (*dw.Expr, error) {
	e, err := dw.Compile(src)
	if err != nil {
		return nil, fieldErr(field, "%s", err.Error())
	}
	return e, nil
}

// constantTimeEqual compares secrets without leaking where they differ.
func constantTimeEqual(a, b string) bool {
	// Hash first so lengths leak nothing either.
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
