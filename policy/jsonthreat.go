package policy

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/flexgw/flexgw/ir"
)

// jsonThreatConfig is json-threat-protection-flex's configuration; -1 (the
// default) means no limit.
type jsonThreatConfig struct {
	MaxContainerDepth        *int `json:"maxContainerDepth"`
	MaxObjectEntryCount      *int `json:"maxObjectEntryCount"`
	MaxObjectEntryNameLength *int `json:"maxObjectEntryNameLength"`
	MaxArrayElementCount     *int `json:"maxArrayElementCount"`
	MaxStringValueLength     *int `json:"maxStringValueLength"`
}

// jsonLimits are the compiled limits; a negative value means none.
type jsonLimits struct {
	depth, entries, nameLen, elements, strLen int
}

type jsonThreat struct{}

func init() { Register(jsonThreat{}) }

func (jsonThreat) Name() string { return "json-threat-protection-flex" }

// limitField reads one optional limit: -1 (no limit) or >= 0.
func limitField(field string, v *int) (int, error) {
	if v == nil {
		return -1, nil
	}
	if *v < -1 {
		return 0, fieldErr(field, "must be -1 (no limit) or >= 0, got %d", *v)
	}
	return *v, nil
}

func parseJSONThreat(raw json.RawMessage) (*jsonLimits, error) {
	var c jsonThreatConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	l := &jsonLimits{}
	for _, f := range []struct {
		name string
		v    *int
		out  *int
	}{
		{"maxContainerDepth", c.MaxContainerDepth, &l.depth},
		{"maxObjectEntryCount", c.MaxObjectEntryCount, &l.entries},
		{"maxObjectEntryNameLength", c.MaxObjectEntryNameLength, &l.nameLen},
		{"maxArrayElementCount", c.MaxArrayElementCount, &l.elements},
		{"maxStringValueLength", c.MaxStringValueLength, &l.strLen},
	} {
		n, err := limitField(f.name, f.v)
		if err != nil {
			return nil, err
		}
		*f.out = n
	}
	return l, nil
}

// Validate implements Definition.
func (jsonThreat) Validate(raw json.RawMessage) error {
	_, err := parseJSONThreat(raw)
	return err
}

// jsonFrame is one open container while scanning.
type jsonFrame struct {
	object  bool
	n       int  // entries or elements so far
	wantKey bool // in an object: the next string is a key
}

// check scans one JSON document token by token, keeping only the stack of
// open containers, and stops at the first broken limit.
func (l *jsonLimits) check(rd io.Reader) error {
	dec := json.NewDecoder(rd)
	dec.UseNumber()
	var stack []jsonFrame
	started := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if !started || len(stack) > 0 {
				return limitErr("invalid JSON: unexpected end of document")
			}
			return nil
		}
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return limitErr("invalid JSON at offset %d: %v", se.Offset, se)
			}
			if errors.Is(err, errBodyTooLarge) {
				return err
			}
			return limitErr("invalid JSON: %v", err)
		}
		if started && len(stack) == 0 {
			return limitErr("invalid JSON: more than one top-level value")
		}
		started = true
		// A token that is a key is not a value of its container.
		isKey := false
		if n := len(stack); n > 0 {
			top := &stack[n-1]
			if d, ok := tok.(json.Delim); !ok || (d != '}' && d != ']') {
				if top.object {
					isKey = top.wantKey
					top.wantKey = !top.wantKey
					if isKey {
						top.n++
						if l.entries >= 0 && top.n > l.entries {
							return limitErr("JSON object has more than %d entries (maxObjectEntryCount)", l.entries)
						}
					}
				} else {
					top.n++
					if l.elements >= 0 && top.n > l.elements {
						return limitErr("JSON array has more than %d elements (maxArrayElementCount)", l.elements)
					}
				}
			}
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				stack = append(stack, jsonFrame{object: t == '{', wantKey: t == '{'})
				if l.depth >= 0 && len(stack) > l.depth {
					return limitErr("JSON nesting deeper than %d (maxContainerDepth)", l.depth)
				}
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			n := utf8.RuneCountInString(t)
			if isKey && l.nameLen >= 0 && n > l.nameLen {
				return limitErr("JSON object entry name longer than %d characters (maxObjectEntryNameLength)", l.nameLen)
			}
			if !isKey && l.strLen >= 0 && n > l.strLen {
				return limitErr("JSON string value longer than %d characters (maxStringValueLength)", l.strLen)
			}
		}
	}
}

func isJSONRequest(r *http.Request) bool { return mediaTypeIs(r, "+json", "application/json") }

// Build implements Definition.
func (d jsonThreat) Build(_ Env, p *ir.Policy) (Middleware, error) {
	l, err := parseJSONThreat(p.Config)
	if err != nil {
		return nil, err
	}
	return bodyCheckMiddleware(d.Name(), isJSONRequest, l.check), nil
}

// SecretFields implements Secrets: none: nothing in this config authenticates anyone.
func (jsonThreat) SecretFields() []string { return []string{} }
