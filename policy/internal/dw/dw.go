// Package dw is the small subset of DataWeave that Flex policy
// configurations use in keySelector, ipExpression, jwtExpression, header
// values and logging conditions: templates compiled once and evaluated
// against a request (and its response). It knows nothing of policies; the
// policy engine compiles its fields with it and reports errors by field.
package dw

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// An expression is "#[...]"; any other string is a literal.
//
//	expr    := or
//	or      := and ("or" and)*
//	and     := cmp ("and" cmp)*
//	cmp     := concat (("==" | "!=") concat)?
//	concat  := unary ("++" unary)*
//	unary   := "not" unary | primary
//	primary := 'str' | "str" | number | true | false | null | path | "(" expr ")"
//	path    := root ("." name | "[" 'str' "]")*   root: attributes, authentication, vars
//
// Roots: attributes.{method, requestPath, requestUri, queryString, scheme,
// version, remoteAddress, localAddress, host, headers[...], queryParams[...],
// statusCode (response)}; authentication.{clientId, principal,
// properties.claims.X}; vars.{claimSet.X, apiName, method, requestPath,
// remoteAddress, reqId, requestDisposition}.

// Expr is a compiled template: a literal or an expression.
type Expr struct {
	src     string
	literal bool
	node    node
}

// Env is what an expression sees: the request, and the response once
// the upstream answered.
type Env struct {
	Request *http.Request
	// API is the ApiInstance's key (vars.apiName).
	API string
	// Status and RespHeader are the upstream's answer, zero before it.
	Status     int
	RespHeader http.Header
	// Violation is the policy that denied the request, "" when processed.
	Violation string
}

type node func(env *Env) any

// Compile compiles src; its errors quote src and say what is wrong.
func Compile(src string) (*Expr, error) {
	t := strings.TrimSpace(src)
	if !strings.HasPrefix(t, "#[") || !strings.HasSuffix(t, "]") {
		return &Expr{src: src, literal: true}, nil
	}
	p := &parser{src: t[2 : len(t)-1]}
	if err := p.lex(); err != nil {
		return nil, fmt.Errorf("expression %q: %v", src, err)
	}
	n, err := p.parseOr()
	if err == nil && p.pos < len(p.toks) {
		err = fmt.Errorf("unexpected %q", p.toks[p.pos].text)
	}
	if err != nil {
		return nil, fmt.Errorf("expression %q: %v", src, err)
	}
	return &Expr{src: src, node: n}, nil
}

// IsLiteral reports whether the template holds no expression.
func (e *Expr) IsLiteral() bool { return e.literal }

// Source is the template as configured.
func (e *Expr) Source() string { return e.src }

func (e *Expr) eval(env *Env) any {
	if e.literal {
		return e.src
	}
	return e.node(env)
}

// String evaluates to text. A literal returns its text without boxing
// it in an interface (an allocation per call on the request path).
func (e *Expr) String(env *Env) string {
	if e.literal {
		return e.src
	}
	return ToString(e.node(env))
}

// Bool evaluates to a condition.
func (e *Expr) Bool(env *Env) bool { return truthy(e.eval(env)) }

type token struct {
	kind byte // 's' string, 'n' number, 'i' ident, 'o' operator
	text string
}

type parser struct {
	src  string
	toks []token
	pos  int
}

func (p *parser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '\'' || c == '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return fmt.Errorf("unterminated string at %d", i)
			}
			p.toks = append(p.toks, token{'s', s[i+1 : i+1+j]})
			i += j + 2
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			p.toks = append(p.toks, token{'n', s[i:j]})
			i = j
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			p.toks = append(p.toks, token{'i', s[i:j]})
			i = j
		case strings.HasPrefix(s[i:], "=="), strings.HasPrefix(s[i:], "!="), strings.HasPrefix(s[i:], "++"):
			p.toks = append(p.toks, token{'o', s[i : i+2]})
			i += 2
		case strings.IndexByte(".[]()", c) >= 0:
			p.toks = append(p.toks, token{'o', s[i : i+1]})
			i++
		default:
			return fmt.Errorf("unexpected character %q at %d", c, i)
		}
	}
	return nil
}

func (p *parser) peek() token {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return token{}
}

func (p *parser) accept(kind byte, text string) bool {
	t := p.peek()
	if t.kind == kind && t.text == text {
		p.pos++
		return true
	}
	return false
}

func (p *parser) parseOr() (node, error) {
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.accept('i', "or") {
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		a, b := l, r
		l = func(env *Env) any { return truthy(a(env)) || truthy(b(env)) }
	}
	return l, nil
}

func (p *parser) parseAnd() (node, error) {
	l, err := p.parseCmp()
	if err != nil {
		return nil, err
	}
	for p.accept('i', "and") {
		r, err := p.parseCmp()
		if err != nil {
			return nil, err
		}
		a, b := l, r
		l = func(env *Env) any { return truthy(a(env)) && truthy(b(env)) }
	}
	return l, nil
}

func (p *parser) parseCmp() (node, error) {
	l, err := p.parseConcat()
	if err != nil {
		return nil, err
	}
	for _, op := range []string{"==", "!="} {
		if p.accept('o', op) {
			r, err := p.parseConcat()
			if err != nil {
				return nil, err
			}
			eq := op == "=="
			return func(env *Env) any { return (ToString(l(env)) == ToString(r(env))) == eq }, nil
		}
	}
	return l, nil
}

func (p *parser) parseConcat() (node, error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for p.accept('o', "++") {
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		a, b := l, r
		l = func(env *Env) any { return ToString(a(env)) + ToString(b(env)) }
	}
	return l, nil
}

func (p *parser) parseUnary() (node, error) {
	if p.accept('i', "not") {
		n, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return func(env *Env) any { return !truthy(n(env)) }, nil
	}
	return p.parsePrimary()
}

func (p *parser) parsePrimary() (node, error) {
	t := p.peek()
	switch {
	case t.kind == 0:
		return nil, fmt.Errorf("unexpected end of expression")
	case t.kind == 's':
		p.pos++
		v := t.text
		return func(*Env) any { return v }, nil
	case t.kind == 'n':
		p.pos++
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", t.text)
		}
		return func(*Env) any { return f }, nil
	case t.kind == 'o' && t.text == "(":
		p.pos++
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if !p.accept('o', ")") {
			return nil, fmt.Errorf("missing )")
		}
		return n, nil
	case t.kind == 'i':
		switch t.text {
		case "true", "false":
			p.pos++
			b := t.text == "true"
			return func(*Env) any { return b }, nil
		case "null":
			p.pos++
			return func(*Env) any { return nil }, nil
		case "attributes", "authentication", "vars":
			return p.parsePath()
		case "payload":
			// Bodies are streamed, never buffered for policies: the
			// payload reads as null.
			p.pos++
			for p.accept('o', ".") || p.accept('o', "[") {
				if t := p.peek(); t.kind != 0 {
					p.pos++
				}
				p.accept('o', "]")
			}
			return func(*Env) any { return nil }, nil
		}
		return nil, fmt.Errorf("unknown name %q (want attributes, authentication, vars or payload)", t.text)
	}
	return nil, fmt.Errorf("unexpected %q", t.text)
}

func (p *parser) parsePath() (node, error) {
	root := p.toks[p.pos].text
	p.pos++
	var keys []string
	for {
		switch {
		case p.accept('o', "."):
			t := p.peek()
			if t.kind != 'i' {
				return nil, fmt.Errorf("name expected after '.'")
			}
			p.pos++
			keys = append(keys, t.text)
			continue
		case p.accept('o', "["):
			t := p.peek()
			if t.kind != 's' && t.kind != 'n' {
				return nil, fmt.Errorf("string expected inside [ ]")
			}
			p.pos++
			if !p.accept('o', "]") {
				return nil, fmt.Errorf("missing ]")
			}
			keys = append(keys, t.text)
			continue
		}
		break
	}
	return func(env *Env) any {
		var v any
		switch root {
		case "attributes":
			v = attributesObj{env}
		case "authentication":
			v = authObj{env}
		case "vars":
			v = varsObj{env}
		}
		for _, k := range keys {
			v = index(v, k)
			if v == nil {
				return nil
			}
		}
		return v
	}, nil
}

// object is a lazily computed record an expression can index.
type object interface{ field(name string) any }

func index(v any, k string) any {
	switch o := v.(type) {
	case object:
		return o.field(k)
	case map[string]any:
		return o[k]
	case []any:
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= len(o) {
			return nil
		}
		return o[i]
	}
	return nil
}

type attributesObj struct{ env *Env }

func (a attributesObj) field(name string) any {
	r := a.env.Request
	switch name {
	case "method":
		return r.Method
	case "requestPath":
		return r.URL.Path
	case "requestUri":
		return r.URL.RequestURI()
	case "queryString":
		return r.URL.RawQuery
	case "scheme":
		if r.TLS != nil {
			return "https"
		}
		return "http"
	case "version":
		return r.Proto
	case "remoteAddress":
		// The peer IP without the port, as Envoy's remote_address rate
		// limit action computes it: a per-client key, not per-connection.
		return remoteIP(r)
	case "localAddress":
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(interface{ String() string }); ok {
			return la.String()
		}
		return nil
	case "host":
		return r.Host
	case "headers":
		if a.env.RespHeader != nil {
			return headerObj(a.env.RespHeader)
		}
		return headerObj(r.Header)
	case "queryParams":
		return queryObj{r}
	case "statusCode":
		if a.env.Status == 0 {
			return nil
		}
		return float64(a.env.Status)
	}
	return nil
}

type headerObj http.Header

func (h headerObj) field(name string) any {
	v := http.Header(h).Values(name)
	if len(v) == 0 {
		return nil
	}
	return strings.Join(v, ",")
}

type queryObj struct{ r *http.Request }

func (q queryObj) field(name string) any {
	v, ok := q.r.URL.Query()[name]
	if !ok || len(v) == 0 {
		return nil
	}
	return v[0]
}

type authObj struct{ env *Env }

func (a authObj) field(name string) any {
	au := AuthenticationFrom(a.env.Request.Context())
	if au == nil {
		return nil
	}
	switch name {
	case "clientId":
		return au.ClientID
	case "principal":
		return au.Principal
	case "properties":
		return map[string]any{"claims": au.Claims}
	}
	return nil
}

type varsObj struct{ env *Env }

func (v varsObj) field(name string) any {
	r := v.env.Request
	switch name {
	case "claimSet":
		if au := AuthenticationFrom(r.Context()); au != nil && au.Claims != nil {
			return au.Claims
		}
		return nil
	case "apiName", "apiInstanceName":
		return v.env.API
	case "method":
		return r.Method
	case "requestPath":
		return r.URL.Path
	case "remoteAddress":
		return remoteIP(r)
	case "reqId":
		return r.Header.Get("X-Request-Id")
	case "requestDisposition":
		if v.env.Violation != "" {
			return "VIOLATION"
		}
		return "PROCESSED"
	case "violation":
		if v.env.Violation == "" {
			return nil
		}
		return map[string]any{"policyName": v.env.Violation, "violationType": "VIOLATION"}
	}
	return nil
}

// ToString renders a value as an expression renders it: JSON for
// structures, "k=v, ..." for header maps, plain text for scalars.
func ToString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case headerObj:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strings.ToLower(k) + "=" + strings.Join(x[k], ","))
		}
		return b.String()
	case object:
		return fmt.Sprintf("%v", x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x == "true"
	}
	return false
}

// Authentication is what an authentication policy learned about the
// caller; expressions read it from the request's context.
type Authentication struct {
	Principal string
	ClientID  string
	// Claims are a validated JWT's claims, shared by every request that
	// sends the same token (jwt-validation-flex caches them): read-only.
	Claims map[string]any
}

// AuthKey is the context key a request's Authentication is found under.
// Its value is an *Authentication (WithAuthentication) or an *AuthSlot:
// a context that is per-request state of its own (the built-in data
// plane's) answers the key with a slot, and an authentication policy
// stores into it instead of wrapping the request (a context.WithValue and
// a Request.WithContext per authenticated request).
type AuthKey struct{}

// AuthSlot holds one request's Authentication inside per-request state.
// Its zero value is empty; the owner resets it when the request ends.
type AuthSlot struct {
	a   Authentication
	set bool
}

// WithAuthentication returns ctx carrying a.
func WithAuthentication(ctx context.Context, a *Authentication) context.Context {
	return context.WithValue(ctx, AuthKey{}, a)
}

// Authenticate records a as r's authentication and returns the request
// to pass on with the stored copy, which the caller may still complete
// before passing the request on. When r's context holds an AuthSlot the
// request is returned unchanged.
func Authenticate(r *http.Request, a Authentication) (*http.Request, *Authentication) {
	if s, ok := r.Context().Value(AuthKey{}).(*AuthSlot); ok {
		s.a, s.set = a, true
		return r, &s.a
	}
	p := new(Authentication) // not &a: that moves a to the heap on every path
	*p = a
	return r.WithContext(context.WithValue(r.Context(), AuthKey{}, p)), p
}

// AuthenticationFrom returns the request's authentication, or nil.
func AuthenticationFrom(ctx context.Context) *Authentication {
	switch v := ctx.Value(AuthKey{}).(type) {
	case *Authentication:
		return v
	case *AuthSlot:
		if v.set {
			return &v.a
		}
	}
	return nil
}

func remoteIP(r *http.Request) string {
	if a := PeerAddr(r); a.IsValid() {
		return a.String()
	}
	return r.RemoteAddr
}

// PeerAddr is the request's TCP peer address, IPv4-mapped addresses
// unmapped; the zero Addr when RemoteAddr is not an address.
func PeerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}
