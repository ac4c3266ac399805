package policy

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/flexgw/flexgw/ir"
)

// xmlThreatConfig is xml-threat-protection-flex's configuration; -1 (the
// default) means no limit.
type xmlThreatConfig struct {
	MaxNodeDepth                *int `json:"maxNodeDepth"`
	MaxAttributeCountPerElement *int `json:"maxAttributeCountPerElement"`
	MaxChildCount               *int `json:"maxChildCount"`
	MaxTextLength               *int `json:"maxTextLength"`
	MaxAttributeLength          *int `json:"maxAttributeLength"`
	MaxCommentLength            *int `json:"maxCommentLength"`
}

type xmlLimits struct {
	depth, attrs, children, text, attrLen, comment int
}

// xmlThreat is registered under Flex's policy name and under the name the
// Local Mode page's own snippet uses ("xml-threat-protection").
type xmlThreat struct{ name string }

func init() {
	Register(xmlThreat{"xml-threat-protection-flex"})
	Register(xmlThreat{"xml-threat-protection"})
}

func (d xmlThreat) Name() string { return d.name }

func parseXMLThreat(raw json.RawMessage) (*xmlLimits, error) {
	var c xmlThreatConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	l := &xmlLimits{}
	for _, f := range []struct {
		name string
		v    *int
		out  *int
	}{
		{"maxNodeDepth", c.MaxNodeDepth, &l.depth},
		{"maxAttributeCountPerElement", c.MaxAttributeCountPerElement, &l.attrs},
		{"maxChildCount", c.MaxChildCount, &l.children},
		{"maxTextLength", c.MaxTextLength, &l.text},
		{"maxAttributeLength", c.MaxAttributeLength, &l.attrLen},
		{"maxCommentLength", c.MaxCommentLength, &l.comment},
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
func (xmlThreat) Validate(raw json.RawMessage) error {
	_, err := parseXMLThreat(raw)
	return err
}

// check reads one XML document with encoding/xml's streaming decoder in
// strict mode, keeping a child count per open element. encoding/xml never
// expands DTD entities (an undeclared entity reference is an error), so
// entity expansion bombs and external entities cannot reach the upstream
// through this policy; DOCTYPEs with entity declarations are refused.
func (l *xmlLimits) check(rd io.Reader) error {
	dec := xml.NewDecoder(rd)
	dec.Strict = true
	// Documents in other charsets are refused rather than guessed at.
	dec.CharsetReader = nil
	var children []int // child elements per open element
	roots := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if roots == 0 || len(children) > 0 {
				return limitErr("invalid XML: unexpected end of document")
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, errBodyTooLarge) {
				return err
			}
			return limitErr("invalid XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(children) == 0 {
				roots++
				if roots > 1 {
					return limitErr("invalid XML: more than one root element")
				}
			} else {
				children[len(children)-1]++
				if l.children >= 0 && children[len(children)-1] > l.children {
					return limitErr("XML element has more than %d children (maxChildCount)", l.children)
				}
			}
			children = append(children, 0)
			if l.depth >= 0 && len(children) > l.depth {
				return limitErr("XML nesting deeper than %d (maxNodeDepth)", l.depth)
			}
			n := 0
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
					continue // namespace declarations do not count (Flex)
				}
				n++
				if l.attrLen >= 0 && utf8.RuneCountInString(a.Value) > l.attrLen {
					return limitErr("XML attribute longer than %d characters (maxAttributeLength)", l.attrLen)
				}
			}
			if l.attrs >= 0 && n > l.attrs {
				return limitErr("XML element has more than %d attributes (maxAttributeCountPerElement)", l.attrs)
			}
		case xml.EndElement:
			if len(children) == 0 {
				return limitErr("invalid XML: unexpected end element </%s>", t.Name.Local)
			}
			children = children[:len(children)-1]
		case xml.CharData:
			if len(children) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return limitErr("invalid XML: text outside the root element")
				}
				continue
			}
			if l.text >= 0 && utf8.RuneCount(t) > l.text {
				return limitErr("XML text longer than %d characters (maxTextLength)", l.text)
			}
		case xml.Comment:
			if l.comment >= 0 && utf8.RuneCount(t) > l.comment {
				return limitErr("XML comment longer than %d characters (maxCommentLength)", l.comment)
			}
		case xml.Directive:
			if bytes.Contains(t, []byte("ENTITY")) {
				return limitErr("XML entity declarations are not accepted")
			}
		}
	}
}

func isXMLRequest(r *http.Request) bool {
	return mediaTypeIs(r, "+xml", "application/xml", "text/xml")
}

// Build implements Definition.
func (d xmlThreat) Build(_ Env, p *ir.Policy) (Middleware, error) {
	l, err := parseXMLThreat(p.Config)
	if err != nil {
		return nil, err
	}
	return bodyCheckMiddleware(d.Name(), isXMLRequest, l.check), nil
}

// SecretFields implements Secrets: none: nothing in this config authenticates anyone.
func (xmlThreat) SecretFields() []string { return []string{} }
