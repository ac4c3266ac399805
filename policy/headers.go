package policy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy/internal/dw"
)

// headerInjectionConfig is header-injection-flex's configuration. Keys and
// values may be expressions.
type headerInjectionConfig struct {
	InboundHeaders  []headerKV `json:"inboundHeaders"`
	OutboundHeaders []headerKV `json:"outboundHeaders"`
}

type headerKV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// headerRemovalConfig is header-removal-flex's configuration.
type headerRemovalConfig struct {
	InboundHeaders  []string `json:"inboundHeaders"`
	OutboundHeaders []string `json:"outboundHeaders"`
}

// singleValued headers are overwritten rather than added to (Flex).
var singleValued = map[string]bool{
	"Access-Control-Allow-Origin": true, "Content-Type": true, "Content-Length": true, "Transfer-Encoding": true,
}

type compiledHeader struct{ key, value *dw.Expr }

type headerInjection struct{}
type headerRemoval struct{}

func init() {
	Register(headerInjection{})
	Register(headerRemoval{})
}

func (headerInjection) Name() string { return "header-injection-flex" }
func (headerRemoval) Name() string   { return "header-removal-flex" }

func compileHeaders(field string, in []headerKV) ([]compiledHeader, error) {
	var out []compiledHeader
	for i, h := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		if h.Key == "" {
			return nil, fieldErr(f+".key", "required")
		}
		k, err := compileExpr(f+".key", h.Key)
		if err != nil {
			return nil, err
		}
		if k.IsLiteral() && !httpguts.ValidHeaderFieldName(h.Key) {
			return nil, fieldErr(f+".key", "%q is not a valid header name", h.Key)
		}
		v, err := compileExpr(f+".value", h.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, compiledHeader{k, v})
	}
	return out, nil
}

func parseInjection(raw json.RawMessage) (in, out []compiledHeader, err error) {
	var c headerInjectionConfig
	if err := decode(raw, &c); err != nil {
		return nil, nil, err
	}
	if len(c.InboundHeaders)+len(c.OutboundHeaders) == 0 {
		return nil, nil, fieldErr("inboundHeaders", "inboundHeaders and outboundHeaders cannot both be empty")
	}
	if in, err = compileHeaders("inboundHeaders", c.InboundHeaders); err != nil {
		return nil, nil, err
	}
	if out, err = compileHeaders("outboundHeaders", c.OutboundHeaders); err != nil {
		return nil, nil, err
	}
	return in, out, nil
}

// Validate implements Definition.
func (headerInjection) Validate(raw json.RawMessage) error {
	_, _, err := parseInjection(raw)
	return err
}

func setHeader(h http.Header, k, v string) {
	if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
		return
	}
	if singleValued[http.CanonicalHeaderKey(k)] {
		h.Set(k, v)
		return
	}
	h.Add(k, v)
}

// injectRequestHeader sets an inbound header. Flex appends an injected
// header to one the message already has; for the request that would let a
// client pre-empt the gateway's value (an upstream reading the first
// "Authorization" reads the client's), so an inbound header replaces the
// client's values, and only a second entry for the same key in the
// policy's own list adds to it. Outbound headers keep Flex's rule
// (setHeader). docs/security.md records the difference.
func injectRequestHeader(h http.Header, k, v string, earlier []compiledHeader, e *dw.Env) {
	if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
		return
	}
	for _, p := range earlier {
		if strings.EqualFold(p.key.String(e), k) {
			h.Add(k, v)
			return
		}
	}
	h.Set(k, v)
}

// Build implements Definition.
func (d headerInjection) Build(env Env, p *ir.Policy) (Middleware, error) {
	in, out, err := parseInjection(p.Config)
	if err != nil {
		return nil, err
	}
	api, name := apiName(env), d.Name()
	// Literal headers need no expression environment: building one per
	// request is an allocation the common case does not need.
	inEnv := false
	for _, h := range in {
		inEnv = inEnv || !h.key.IsLiteral() || !h.value.IsLiteral()
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			Decide(r, name, Allowed)
			if len(in) > 0 {
				var e *dw.Env
				if inEnv {
					e = &dw.Env{Request: r, API: api}
				}
				for i, h := range in {
					injectRequestHeader(r.Header, h.key.String(e), h.value.String(e), in[:i], e)
				}
			}
			if len(out) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(newHookWriter(w, func(status int, rh http.Header) {
				e := &dw.Env{Request: r, API: api, Status: status, RespHeader: rh}
				for _, h := range out {
					setHeader(rh, h.key.String(e), h.value.String(e))
				}
			}), r)
		})
	}, nil
}

// headerPattern is one entry of header-removal-flex's lists: a header name
// or, as Flex documents ("Access-Control.*"), a regular expression that
// must match the whole name, case-insensitively (header names are).
type headerPattern struct {
	name string         // lower-case literal name, when no regexp
	re   *regexp.Regexp // anchored, case-insensitive
	src  string
}

// regexpMeta are the characters that make an entry a regular expression;
// a plain header token has none of them (the token's '.' aside, which
// matches itself either way).
const regexpMeta = `*+?()[]{}|^$\`

func compilePattern(field, s string) (headerPattern, error) {
	if !strings.ContainsAny(s, regexpMeta) {
		if !httpguts.ValidHeaderFieldName(s) {
			return headerPattern{}, fieldErr(field, "%q is not a valid header name", s)
		}
		return headerPattern{name: strings.ToLower(s), src: s}, nil
	}
	re, err := regexp.Compile("(?i)^(?:" + s + ")$")
	if err != nil {
		return headerPattern{}, fieldErr(field, "%q is neither a header name nor a valid regular expression: %v", s, err)
	}
	return headerPattern{re: re, src: s}, nil
}

func (p headerPattern) matches(name string) bool {
	if p.re != nil {
		return p.re.MatchString(name)
	}
	return strings.EqualFold(name, p.name)
}

type headerRemovalPolicy struct {
	in, out []headerPattern
}

func parseRemoval(raw json.RawMessage) (*headerRemovalPolicy, error) {
	var c headerRemovalConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	if len(c.InboundHeaders)+len(c.OutboundHeaders) == 0 {
		return nil, fieldErr("inboundHeaders", "inboundHeaders and outboundHeaders cannot both be empty")
	}
	p := &headerRemovalPolicy{}
	for _, set := range []struct {
		f   string
		l   []string
		dst *[]headerPattern
	}{{"inboundHeaders", c.InboundHeaders, &p.in}, {"outboundHeaders", c.OutboundHeaders, &p.out}} {
		for i, h := range set.l {
			hp, err := compilePattern(fmt.Sprintf("%s[%d]", set.f, i), h)
			if err != nil {
				return nil, err
			}
			*set.dst = append(*set.dst, hp)
		}
	}
	return p, nil
}

// Validate implements Definition.
func (headerRemoval) Validate(raw json.RawMessage) error {
	_, err := parseRemoval(raw)
	return err
}

// removeHeaders deletes every header matching one of the patterns.
func removeHeaders(h http.Header, ps []headerPattern) {
	for _, p := range ps {
		if p.re == nil {
			h.Del(p.name)
			continue
		}
		for k := range h {
			if p.re.MatchString(k) {
				delete(h, k)
			}
		}
	}
}

// Build implements Definition.
func (d headerRemoval) Build(_ Env, p *ir.Policy) (Middleware, error) {
	c, err := parseRemoval(p.Config)
	if err != nil {
		return nil, err
	}
	name := d.Name()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			Decide(r, name, Allowed)
			removeHeaders(r.Header, c.in)
			if len(c.out) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(newHookWriter(w, func(_ int, rh http.Header) { removeHeaders(rh, c.out) }), r)
		})
	}, nil
}

// SecretFields implements Secrets: injected values are often credentials
// (an API key for the upstream), so every value is one.
func (headerInjection) SecretFields() []string {
	return []string{"inboundHeaders.*.value", "outboundHeaders.*.value"}
}

// SecretFields implements Secrets: header names only, none secret.
func (headerRemoval) SecretFields() []string { return []string{} }

// SingleValued reports whether header-injection-flex overwrites the header
// name rather than adding a value to it (Flex's rule, on both data planes).
func SingleValued(name string) bool { return singleValued[http.CanonicalHeaderKey(name)] }

// InjectedHeaderSpec is one header-injection-flex entry as source text.
type InjectedHeaderSpec struct {
	Name, Value string
	// Literal is true when neither Name nor Value holds an expression.
	Literal bool
}

// HeaderInjectionSpecOf validates p's configuration and returns its
// inbound and outbound headers in configuration order.
func HeaderInjectionSpecOf(p *ir.Policy) (inbound, outbound []InjectedHeaderSpec, err error) {
	in, out, err := parseInjection(p.Config)
	if err != nil {
		return nil, nil, err
	}
	spec := func(hs []compiledHeader) []InjectedHeaderSpec {
		var s []InjectedHeaderSpec
		for _, h := range hs {
			s = append(s, InjectedHeaderSpec{Name: h.key.Source(), Value: h.value.Source(), Literal: h.key.IsLiteral() && h.value.IsLiteral()})
		}
		return s
	}
	return spec(in), spec(out), nil
}

// HeaderPatternSpec is one header-removal-flex entry: a literal lower-case
// Name, or (Name empty) Regexp, the configured expression, which must match
// a whole header name case-insensitively.
type HeaderPatternSpec struct {
	Name   string
	Regexp string
}

// HeaderRemovalSpecOf validates p's configuration and returns the inbound
// and outbound patterns in configuration order.
func HeaderRemovalSpecOf(p *ir.Policy) (inbound, outbound []HeaderPatternSpec, err error) {
	c, err := parseRemoval(p.Config)
	if err != nil {
		return nil, nil, err
	}
	spec := func(ps []headerPattern) []HeaderPatternSpec {
		var s []HeaderPatternSpec
		for _, hp := range ps {
			if hp.re != nil {
				s = append(s, HeaderPatternSpec{Regexp: hp.src})
				continue
			}
			s = append(s, HeaderPatternSpec{Name: hp.name})
		}
		return s
	}
	return spec(c.in), spec(c.out), nil
}
