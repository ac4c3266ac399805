package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/flexgw/flexgw/ir"
)

// specValidationConfig is spec-validation-flex's configuration, as Flex's
// Schema Validation page lists it.
type specValidationConfig struct {
	Source                 string `json:"source"`
	Spec                   string `json:"spec"`
	APIBasePath            string `json:"apiBasePath"`
	BlockOperation         *bool  `json:"blockOperation"`
	StrictParamsValidation bool   `json:"strictParamsValidation"`
}

type specValidation struct{}

func init() { Register(specValidation{}) }

func (specValidation) Name() string { return "spec-validation-flex" }

// compiledSpec is one binding's parsed and checked OpenAPI document.
type compiledSpec struct {
	router   routers.Router
	basePath string // "" for "/", else "/api" (no trailing slash)
	block    bool
	strict   bool
	opts     *openapi3filter.Options
}

func parseSpecValidation(raw json.RawMessage) (*compiledSpec, error) {
	var c specValidationConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	switch c.Source {
	case "inline":
	case "", "context":
		return nil, fieldErr("source", "must be \"inline\" in Local Mode, got %q (\"context\" reads the specification from Exchange, which needs Connected Mode)", c.Source)
	default:
		return nil, fieldErr("source", "must be \"inline\", got %q", c.Source)
	}
	if strings.TrimSpace(c.Spec) == "" {
		return nil, fieldErr("spec", "required: the OpenAPI 3 specification (JSON or YAML) when source is inline")
	}
	base := c.APIBasePath
	if base == "" {
		base = "/"
	}
	if !strings.HasPrefix(base, "/") || strings.ContainsAny(base, "?#{}") {
		return nil, fieldErr("apiBasePath", "must be a path starting with /, got %q", c.APIBasePath)
	}
	base = strings.TrimRight(base, "/")

	loader := openapi3.NewLoader()
	// A $ref to a file or URL would make the gateway read the disk or the
	// network at configuration time: Flex takes one self-contained file.
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromData([]byte(c.Spec))
	if err != nil {
		return nil, fieldErr("spec", "not an OpenAPI document: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		return nil, fieldErr("spec", "openapi version %q: only OpenAPI 3 (OAS3) is supported", doc.OpenAPI)
	}
	if doc.Paths == nil || doc.Paths.Len() == 0 {
		return nil, fieldErr("spec", "declares no paths")
	}
	// The spec's servers name where the API was designed to run, not this
	// gateway: requests are matched on the path under apiBasePath only.
	doc.Servers = nil
	for _, item := range doc.Paths.Map() {
		item.Servers = nil
	}
	router, err := legacy.NewRouter(doc, openapi3.EnableExamplesValidation())
	if err != nil {
		return nil, fieldErr("spec", "%v", err)
	}
	out := &compiledSpec{router: router, basePath: base, block: true, strict: c.StrictParamsValidation}
	if c.BlockOperation != nil {
		out.block = *c.BlockOperation
	}
	out.opts = &openapi3filter.Options{
		// Authentication is other policies' job; the spec's security
		// schemes are not enforced here (nor by Flex's policy).
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		// The request goes upstream as the client sent it: no defaults
		// written into its query or body.
		SkipSettingDefaults: true,
	}
	return out, nil
}

// Validate implements Definition.
func (specValidation) Validate(raw json.RawMessage) error {
	_, err := parseSpecValidation(raw)
	return err
}

// check validates one request against the spec and returns why it does
// not conform, or "" when it does. The body, when the operation declares
// one, is read (at most MaxInspectedBody) and put back.
func (c *compiledSpec) check(r *http.Request) (int, string) {
	path := r.URL.Path
	if c.basePath != "" {
		rest, ok := strings.CutPrefix(path, c.basePath)
		if !ok || (rest != "" && rest[0] != '/') {
			return http.StatusBadRequest, fmt.Sprintf("path %s is outside the API base path %s", path, c.basePath)
		}
		if rest == "" {
			rest = "/"
		}
		path = rest
	}
	// The router reads only the method and URL path: a shallow copy with
	// the base path removed.
	u := *r.URL
	u.Path, u.RawPath = path, ""
	rr := &http.Request{Method: r.Method, URL: &u, Header: r.Header, Host: r.Host}
	route, params, err := c.router.FindRoute(rr)
	if err != nil {
		// The router's trie is keyed by method, so a path declared for
		// other methods only reads "not found": say which it is.
		for _, m := range specMethods {
			if m == r.Method {
				continue
			}
			rr.Method = m
			if _, _, err := c.router.FindRoute(rr); err == nil {
				return http.StatusBadRequest, fmt.Sprintf("method %s is not declared for %s in the specification", r.Method, path)
			}
		}
		return http.StatusBadRequest, fmt.Sprintf("path %s is not declared in the specification", path)
	}
	if c.strict {
		if msg := undeclaredQuery(route, r.URL.Query()); msg != "" {
			return http.StatusBadRequest, msg
		}
	}
	// Only an operation that declares a body has it read (and held): any
	// other body streams upstream untouched.
	if route.Operation.RequestBody != nil && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > MaxInspectedBody {
			return http.StatusRequestEntityTooLarge, errBodyTooLarge.Error()
		}
		r.Body = &capBody{capReader: capReader{r: r.Body, left: MaxInspectedBody}, c: r.Body}
		defer func() {
			if r.Header.Get("Content-Length") != "" || len(r.TransferEncoding) > 0 {
				r.TransferEncoding = nil
				r.Header.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
			}
		}()
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: c.opts}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		if errors.Is(err, errBodyTooLarge) {
			return http.StatusRequestEntityTooLarge, errBodyTooLarge.Error()
		}
		return http.StatusBadRequest, validationMessage(err)
	}
	return 0, ""
}

// specMethods are the operations an OpenAPI 3 path item declares.
var specMethods = []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodOptions, http.MethodHead, http.MethodPatch, http.MethodTrace}

// capBody is capReader over a request body that still closes it.
type capBody struct {
	capReader
	c interface{ Close() error }
}

func (b *capBody) Close() error { return b.c.Close() }

// undeclaredQuery names the first query parameter the operation does not
// declare (strictParamsValidation).
func undeclaredQuery(route *routers.Route, q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	declared := map[string]bool{}
	for _, ps := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, p := range ps {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				declared[p.Value.Name] = true
			}
		}
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !declared[k] {
			return fmt.Sprintf("query parameter %q is not declared in the specification", k)
		}
	}
	return ""
}

// validationMessage is kin-openapi's reason, on one line and bounded: it
// goes to the client and to the log.
func validationMessage(err error) string {
	msg := err.Error()
	var re *openapi3filter.RequestError
	if errors.As(err, &re) {
		msg = re.Error()
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 512 {
		msg = msg[:512] + "…"
	}
	return "request does not conform to the specification: " + msg
}

// Build implements Definition.
func (d specValidation) Build(env Env, p *ir.Policy) (Middleware, error) {
	c, err := parseSpecValidation(p.Config)
	if err != nil {
		return nil, err
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "policy", "policy", d.Name(), "binding", p.Binding)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			status, msg := c.check(r)
			switch {
			case status == 0:
				Decide(r, d.Name(), Allowed)
			case c.block || status == http.StatusRequestEntityTooLarge:
				deny(w, r, d.Name(), Denied, status, msg)
				return
			default:
				// blockOperation false: Flex logs the violation and lets
				// the request through.
				log.LogAttrs(r.Context(), slog.LevelWarn, "request does not conform to the specification (not blocked: blockOperation is false)",
					slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("reason", msg),
					slog.String("request_id", r.Header.Get("X-Request-Id")))
				Decide(r, d.Name(), Allowed)
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

// SecretFields implements Secrets: none: a specification authenticates no one.
func (specValidation) SecretFields() []string { return []string{} }
