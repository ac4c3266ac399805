package policy

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// This file is what a policy defined in a package of its own (one that
// must link what the built-in policy engine must not, such as
// policy/native and Envoy's service protocols) uses to behave like the
// policies here: the same config decoding, field errors, JSON denials,
// logger and response hook.

// DecodeConfig parses a policy configuration into v as every policy here
// does: unknown fields ignored, type errors naming the field.
func DecodeConfig(raw json.RawMessage, v any) error { return decode(raw, v) }

// FieldErr is a configuration error naming field under config.
func FieldErr(field, format string, args ...any) error {
	return fieldErr(field, format, args...)
}

// Deny records outcome and writes the JSON error response every policy
// writes ({"error","policy","request_id"}); hdr holds extra response
// header name/value pairs.
func Deny(w http.ResponseWriter, r *http.Request, policy, outcome string, status int, msg string, hdr ...string) {
	deny(w, r, policy, outcome, status, msg, hdr...)
}

// Logger is the policy engine's logger for env.
func Logger(env Env) *slog.Logger { return logger(env) }

// OnResponseHeader returns w calling before once, just before the
// response header is written, with the status and the header to change.
func OnResponseHeader(w http.ResponseWriter, before func(status int, h http.Header)) http.ResponseWriter {
	return newHookWriter(w, before)
}

// FlexBool is a boolean that also accepts the strings "true" and "false":
// Flex's own examples quote booleans (includePeerCertificate: "true").
type FlexBool struct {
	Set, V bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *FlexBool) UnmarshalJSON(d []byte) error {
	switch strings.ToLower(strings.Trim(string(d), `"`)) {
	case "true":
		*b = FlexBool{true, true}
	case "false":
		*b = FlexBool{true, false}
	case "null", "":
		*b = FlexBool{}
	default:
		return &json.UnmarshalTypeError{Value: "string " + string(d), Type: reflect.TypeOf(false)}
	}
	return nil
}

// Or returns the value, or def when the field was not set.
func (b FlexBool) Or(def bool) bool {
	if !b.Set {
		return def
	}
	return b.V
}

// FlexInt is an integer that also accepts a numeric string.
type FlexInt struct {
	Set bool
	V   int64
}

// UnmarshalJSON implements json.Unmarshaler.
func (n *FlexInt) UnmarshalJSON(d []byte) error {
	s := strings.Trim(string(d), `"`)
	if s == "null" || s == "" {
		*n = FlexInt{}
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != float64(int64(f)) {
		return &json.UnmarshalTypeError{Value: "number " + s, Type: reflect.TypeOf(int64(0))}
	}
	*n = FlexInt{true, int64(f)}
	return nil
}
