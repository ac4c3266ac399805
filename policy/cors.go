package policy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/flexgw/flexgw/ir"
)

// corsConfig is cors-flex's configuration.
type corsConfig struct {
	OriginGroups []originGroup `json:"originGroups"`
	// PublicResource allows every origin (default true).
	PublicResource     *bool `json:"publicResource"`
	SupportCredentials bool  `json:"supportCredentials"`
}

type originGroup struct {
	Origins             []string        `json:"origins"`
	AccessControlMaxAge *int            `json:"accessControlMaxAge"`
	AllowedMethods      []allowedMethod `json:"allowedMethods"`
	Headers             []string        `json:"headers"`
	ExposedHeaders      []string        `json:"exposedHeaders"`
}

type allowedMethod struct {
	MethodName string `json:"methodName"`
	IsAllowed  bool   `json:"isAllowed"`
}

var defaultCORSMethods = []string{"CONNECT", "DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}

// corsGroup is a compiled origin group.
type corsGroup struct {
	origins  map[string]bool
	wildcard bool
	maxAge   string
	methods  []string
	headers  []string
	anyHdr   bool
	exposed  string
}

type corsPolicy struct {
	public      bool
	credentials bool
	groups      []*corsGroup
}

type cors struct{}

func init() { Register(cors{}) }

func (cors) Name() string { return "cors-flex" }

// CORSOrder is where the data plane and the Envoy translator place cors-flex:
// before every other policy, whatever its configured order (Flex: "the CORS
// policy is always applied first"), so preflights never meet authentication.
const CORSOrder = -1 << 31

func parseCORS(raw json.RawMessage) (*corsPolicy, error) {
	var c corsConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	p := &corsPolicy{public: c.PublicResource == nil || *c.PublicResource, credentials: c.SupportCredentials}
	for i, g := range c.OriginGroups {
		cg := &corsGroup{origins: map[string]bool{}, maxAge: "30"}
		for j, o := range g.Origins {
			o = strings.TrimRight(strings.TrimSpace(o), "/")
			if o == "*" {
				cg.wildcard = true
				continue
			}
			if !strings.Contains(o, "://") {
				return nil, fieldErr(fmt.Sprintf("originGroups[%d].origins[%d]", i, j), "%q is not an origin (scheme://host[:port])", o)
			}
			cg.origins[strings.ToLower(o)] = true
		}
		if g.AccessControlMaxAge != nil {
			if *g.AccessControlMaxAge < 0 {
				return nil, fieldErr(fmt.Sprintf("originGroups[%d].accessControlMaxAge", i), "must be >= 0")
			}
			cg.maxAge = strconv.Itoa(*g.AccessControlMaxAge)
		}
		if len(g.AllowedMethods) == 0 {
			cg.methods = defaultCORSMethods
		}
		for j, m := range g.AllowedMethods {
			if m.MethodName == "" {
				return nil, fieldErr(fmt.Sprintf("originGroups[%d].allowedMethods[%d].methodName", i, j), "required")
			}
			if m.IsAllowed {
				cg.methods = append(cg.methods, strings.ToUpper(m.MethodName))
			}
		}
		for _, h := range g.Headers {
			if h == "*" {
				cg.anyHdr = true
			}
			cg.headers = append(cg.headers, strings.ToLower(h))
		}
		cg.exposed = strings.Join(g.ExposedHeaders, ", ")
		p.groups = append(p.groups, cg)
	}
	if !p.public && len(p.groups) == 0 {
		return nil, fieldErr("originGroups", "required when publicResource is false")
	}
	return p, nil
}

// Validate implements Definition.
func (cors) Validate(raw json.RawMessage) error {
	_, err := parseCORS(raw)
	return err
}

// group finds the group of origin; exact origins win over wildcards.
func (p *corsPolicy) group(origin string) *corsGroup {
	o := strings.ToLower(origin)
	var wild *corsGroup
	for _, g := range p.groups {
		if g.origins[o] {
			return g
		}
		if g.wildcard && wild == nil {
			wild = g
		}
	}
	return wild
}

// Build implements Definition.
func (d cors) Build(_ Env, p *ir.Policy) (Middleware, error) {
	cp, err := parseCORS(p.Config)
	if err != nil {
		return nil, err
	}
	name := d.Name()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			preflight := r.Method == http.MethodOptions
			if origin == "" && !preflight {
				next.ServeHTTP(w, r)
				return
			}
			var g *corsGroup
			allowed := origin != "" && cp.public
			if !cp.public {
				g = cp.group(origin)
				allowed = g != nil
			}
			if preflight {
				// Every OPTIONS is a preflight and ends here (Flex).
				h := w.Header()
				h.Add("Vary", "Origin")
				reqMethod := strings.ToUpper(r.Header.Get("Access-Control-Request-Method"))
				if allowed && g != nil && reqMethod != "" && !contains(g.methods, reqMethod) {
					allowed = false
				}
				if allowed && g != nil && !g.anyHdr {
					for _, rh := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
						if rh = strings.ToLower(strings.TrimSpace(rh)); rh != "" && !contains(g.headers, rh) {
							allowed = false
						}
					}
				}
				if allowed {
					cp.allowOrigin(h, origin)
					if g != nil {
						h.Set("Access-Control-Allow-Methods", strings.Join(g.methods, ", "))
						if g.anyHdr {
							h.Set("Access-Control-Allow-Headers", r.Header.Get("Access-Control-Request-Headers"))
						} else if len(g.headers) > 0 {
							h.Set("Access-Control-Allow-Headers", strings.Join(g.headers, ", "))
						}
						h.Set("Access-Control-Max-Age", g.maxAge)
					} else {
						// A public resource mirrors the preflight.
						if reqMethod != "" {
							h.Set("Access-Control-Allow-Methods", reqMethod)
						}
						if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" {
							h.Set("Access-Control-Allow-Headers", rh)
						}
						h.Set("Access-Control-Max-Age", "30")
					}
					Decide(r, name, Allowed)
				} else {
					Decide(r, name, Denied)
				}
				w.WriteHeader(http.StatusOK)
				return
			}
			if !allowed {
				// Not a denial by the gateway: the request passes without
				// CORS headers and the browser withholds the response.
				next.ServeHTTP(newHookWriter(w, func(_ int, h http.Header) { stripCORS(h) }), r)
				return
			}
			Decide(r, name, Allowed)
			next.ServeHTTP(newHookWriter(w, func(_ int, h http.Header) {
				stripCORS(h)
				cp.allowOrigin(h, origin)
				if g != nil && g.exposed != "" {
					h.Set("Access-Control-Expose-Headers", g.exposed)
				}
				h.Add("Vary", "Origin")
			}), r)
		})
	}, nil
}

func (p *corsPolicy) allowOrigin(h http.Header, origin string) {
	if p.public && !p.credentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if p.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// stripCORS removes the upstream's own CORS headers: the policy decides.
func stripCORS(h http.Header) {
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			delete(h, k)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// SecretFields implements Secrets: none: nothing in this config authenticates anyone.
func (cors) SecretFields() []string { return []string{} }

// DefaultCORSMethods are the methods an origin group allows when it lists none.
var DefaultCORSMethods = defaultCORSMethods

// CORSSpec is a cors-flex binding's validated configuration as plain data.
type CORSSpec struct {
	// Public allows every origin.
	Public      bool
	Credentials bool
	Groups      []CORSGroupSpec
}

// CORSGroupSpec is one origin group.
type CORSGroupSpec struct {
	// Origins are lower-case, without a trailing slash, sorted.
	Origins []string
	// Wildcard is set when the group lists "*".
	Wildcard bool
	// MaxAge is Access-Control-Max-Age's value.
	MaxAge           string
	Methods, Headers []string
	// Exposed is Access-Control-Expose-Headers's value (", "-separated).
	Exposed string
}

// CORSSpecOf validates p's configuration and returns it as a CORSSpec.
func CORSSpecOf(p *ir.Policy) (*CORSSpec, error) {
	cp, err := parseCORS(p.Config)
	if err != nil {
		return nil, err
	}
	s := &CORSSpec{Public: cp.public, Credentials: cp.credentials}
	for _, g := range cp.groups {
		origins := make([]string, 0, len(g.origins))
		for o := range g.origins {
			origins = append(origins, o)
		}
		sort.Strings(origins)
		s.Groups = append(s.Groups, CORSGroupSpec{Origins: origins, Wildcard: g.wildcard, MaxAge: g.maxAge, Methods: g.methods, Headers: g.headers, Exposed: g.exposed})
	}
	return s, nil
}
