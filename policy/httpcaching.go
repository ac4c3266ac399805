package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy/internal/dw"
)

// httpCachingConfig is http-caching-flex's configuration.
type httpCachingConfig struct {
	HTTPCachingKey      *string `json:"httpCachingKey"`
	MaxCacheEntries     *int    `json:"maxCacheEntries"`
	TTL                 *int    `json:"ttl"`
	UseHTTPCacheHeaders *bool   `json:"useHttpCacheHeaders"`
	InvalidationHeader  string  `json:"invalidationHeader"`
	RequestExpression   string  `json:"requestExpression"`
	ResponseExpression  string  `json:"responseExpression"`
	Distributed         bool    `json:"distributed"`
	PersistCache        bool    `json:"persistCache"`
}

// maxCachedBody is the largest response body stored (Flex: 1 MB).
const maxCachedBody = 1 << 20

// CacheStore is the shared store's part distributed caching needs
// (sharedstore.Redis implements it).
type CacheStore interface {
	Get(ctx context.Context, key string) (string, bool, error)
	SetPX(ctx context.Context, key, value string, ttl time.Duration) error
	Del(ctx context.Context, keys ...string) error
	Incr(ctx context.Context, key string, ttlMillis int64) (int64, int64, error)
}

type httpCaching struct{}

func init() { Register(httpCaching{}) }

func (httpCaching) Name() string { return "http-caching-flex" }

type compiledCaching struct {
	key         *dw.Expr
	maxEntries  int
	ttl         time.Duration
	headers     bool
	invalidate  string
	reqExpr     *dw.Expr
	respExpr    *dw.Expr
	respCodes   map[int]bool // the status-list form of responseExpression
	distributed bool
}

// statusListExpr is Flex's default responseExpression form:
// #[[200, 203, ...] contains attributes.statusCode].
var statusListExpr = regexp.MustCompile(`^#\[\s*\[([0-9,\s]*)\]\s+contains\s+attributes\.statusCode\s*\]$`)

const defaultCacheResponseExpr = "#[[200, 203, 204, 206, 300, 301, 404, 405, 410, 414, 501] contains attributes.statusCode]"

func parseHTTPCaching(raw json.RawMessage) (*compiledCaching, error) {
	var c httpCachingConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	out := &compiledCaching{maxEntries: 10000, ttl: 600 * time.Second, headers: boolOr(c.UseHTTPCacheHeaders, true), distributed: c.Distributed}
	keySrc := "#[attributes.requestPath]"
	if c.HTTPCachingKey != nil && *c.HTTPCachingKey != "" {
		keySrc = *c.HTTPCachingKey
	}
	var err error
	if out.key, err = compileExpr("httpCachingKey", keySrc); err != nil {
		return nil, err
	}
	if c.MaxCacheEntries != nil {
		if *c.MaxCacheEntries <= 0 {
			return nil, fieldErr("maxCacheEntries", "must be > 0, got %d", *c.MaxCacheEntries)
		}
		out.maxEntries = *c.MaxCacheEntries
	}
	if c.TTL != nil {
		if *c.TTL <= 0 {
			return nil, fieldErr("ttl", "must be > 0 seconds, got %d", *c.TTL)
		}
		out.ttl = time.Duration(*c.TTL) * time.Second
	}
	if c.InvalidationHeader != "" {
		if err := checkHeaderName("invalidationHeader", c.InvalidationHeader); err != nil {
			return nil, err
		}
		out.invalidate = c.InvalidationHeader
	}
	reqSrc := c.RequestExpression
	if reqSrc == "" {
		reqSrc = "#[attributes.method == 'GET' or attributes.method == 'HEAD']"
	}
	if out.reqExpr, err = compileExpr("requestExpression", reqSrc); err != nil {
		return nil, err
	}
	respSrc := c.ResponseExpression
	if respSrc == "" {
		respSrc = defaultCacheResponseExpr
	}
	if m := statusListExpr.FindStringSubmatch(strings.TrimSpace(respSrc)); m != nil {
		out.respCodes = map[int]bool{}
		for _, f := range strings.Split(m[1], ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			n, err := strconv.Atoi(f)
			if err != nil || n < 100 || n > 599 {
				return nil, fieldErr("responseExpression", "%q is not a status code", f)
			}
			out.respCodes[n] = true
		}
	} else if out.respExpr, err = compileExpr("responseExpression", respSrc); err != nil {
		return nil, err
	}
	return out, nil
}

// Validate implements Definition.
func (httpCaching) Validate(raw json.RawMessage) error {
	_, err := parseHTTPCaching(raw)
	return err
}

// cacheEntry is one stored response.
type cacheEntry struct {
	Status  int                 `json:"s"`
	Header  map[string][]string `json:"h"`
	Body    []byte              `json:"b"`
	Stored  time.Time           `json:"t"`
	Expires time.Time           `json:"e"`
	// Vary holds the request's values of the response's Vary headers.
	Vary map[string]string `json:"v,omitempty"`
}

// cacheBackend is where entries live: this replica's memory or Redis.
type cacheBackend interface {
	get(ctx context.Context, key string) (*cacheEntry, bool)
	put(ctx context.Context, key string, e *cacheEntry)
	del(ctx context.Context, key string)
	clear(ctx context.Context)
}

// localCache is a bounded map evicting first-in first-out (Flex).
type localCache struct {
	mu    sync.Mutex
	max   int
	m     map[string]*cacheEntry
	order []string // insertion order; may hold keys already deleted
}

func (c *localCache) get(_ context.Context, key string) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if ok && !time.Now().Before(e.Expires) {
		delete(c.m, key)
		return nil, false
	}
	return e, ok
}

func (c *localCache) put(_ context.Context, key string, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok {
		c.order = append(c.order, key)
	}
	c.m[key] = e
	for len(c.m) > c.max && len(c.order) > 0 {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	if len(c.order) > 2*c.max+16 { // drop keys deleted meanwhile
		live := c.order[:0]
		for _, k := range c.order {
			if _, ok := c.m[k]; ok {
				live = append(live, k)
			}
		}
		c.order = live
	}
}

func (c *localCache) del(_ context.Context, key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

func (c *localCache) clear(context.Context) {
	c.mu.Lock()
	c.m, c.order = map[string]*cacheEntry{}, nil
	c.mu.Unlock()
}

// redisCache keeps entries in the shared Redis so every replica serves
// what one stored. invalidate-all bumps a generation number that is part
// of every key; replicas re-read it at most once a second.
type redisCache struct {
	store  CacheStore
	prefix string
	gen    atomic.Int64
	genAt  atomic.Int64 // unix nanos of the last read
}

func (c *redisCache) generation(ctx context.Context) int64 {
	now := time.Now().UnixNano()
	if now-c.genAt.Load() < int64(time.Second) {
		return c.gen.Load()
	}
	if v, ok, err := c.store.Get(ctx, c.prefix+"gen"); err == nil {
		n, _ := strconv.ParseInt(v, 10, 64)
		if !ok {
			n = 0
		}
		c.gen.Store(n)
		c.genAt.Store(now)
	}
	return c.gen.Load()
}

func (c *redisCache) k(ctx context.Context, key string) string {
	return fmt.Sprintf("%s%d:%s", c.prefix, c.generation(ctx), key)
}

func (c *redisCache) get(ctx context.Context, key string) (*cacheEntry, bool) {
	v, ok, err := c.store.Get(ctx, c.k(ctx, key))
	if err != nil || !ok {
		return nil, false
	}
	var e cacheEntry
	if json.Unmarshal([]byte(v), &e) != nil || !time.Now().Before(e.Expires) {
		return nil, false
	}
	return &e, true
}

func (c *redisCache) put(ctx context.Context, key string, e *cacheEntry) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	_ = c.store.SetPX(ctx, c.k(ctx, key), string(b), time.Until(e.Expires))
}

func (c *redisCache) del(ctx context.Context, key string) { _ = c.store.Del(ctx, c.k(ctx, key)) }

func (c *redisCache) clear(ctx context.Context) {
	if n, _, err := c.store.Incr(ctx, c.prefix+"gen", 0); err == nil {
		c.gen.Store(n)
		c.genAt.Store(time.Now().UnixNano())
	}
}

// cacheControl holds the directives flexgw reads.
type cacheControl struct {
	noStore, noCache, private, public bool
	maxAge, sMaxAge                   int // -1: absent
}

func parseCacheControl(vs []string) cacheControl {
	cc := cacheControl{maxAge: -1, sMaxAge: -1}
	for _, v := range vs {
		for _, d := range strings.Split(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			arg = strings.Trim(arg, `"`)
			switch strings.ToLower(name) {
			case "no-store":
				cc.noStore = true
			case "no-cache":
				cc.noCache = true
			case "private":
				cc.private = true
			case "public":
				cc.public = true
			case "max-age":
				if n, err := strconv.Atoi(arg); err == nil && n >= 0 {
					cc.maxAge = n
				}
			case "s-maxage":
				if n, err := strconv.Atoi(arg); err == nil && n >= 0 {
					cc.sMaxAge = n
				}
			}
		}
	}
	return cc
}

// Build implements Definition.
func (d httpCaching) Build(env Env, p *ir.Policy) (Middleware, error) {
	c, err := parseHTTPCaching(p.Config)
	if err != nil {
		return nil, err
	}
	var store cacheBackend = &localCache{max: c.maxEntries, m: map[string]*cacheEntry{}}
	if c.distributed {
		cs, ok := env.Shared.(CacheStore)
		if !ok || cs == nil {
			logger(env).Warn("http-caching-flex: distributed needs sharedStorage.redis; caching in this replica only", "binding", p.Binding)
		} else {
			store = &redisCache{store: cs, prefix: "flexgw:cache:" + apiName(env) + ":" + p.Binding + ":"}
		}
	}
	name, api := d.Name(), apiName(env)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			e := &dw.Env{Request: r, API: api}
			key := c.key.String(e)
			if c.invalidate != "" {
				switch strings.ToLower(strings.TrimSpace(r.Header.Get(c.invalidate))) {
				case "invalidate":
					store.del(ctx, key)
				case "invalidate-all":
					store.clear(ctx)
				}
			}
			if !c.reqExpr.Bool(e) || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
				Decide(r, name, Allowed)
				next.ServeHTTP(w, r)
				return
			}
			var reqCC cacheControl
			if c.headers {
				reqCC = parseCacheControl(r.Header.Values("Cache-Control"))
			}
			if !reqCC.noCache {
				if ent, ok := store.get(ctx, key); ok && varyMatches(ent, r) {
					Decide(r, name, Allowed)
					serveCached(w, r, ent)
					return
				}
			}
			// A miss: only a GET's response has the body a later GET or
			// HEAD needs; a shared cache stores nothing answering a
			// request with credentials (RFC 9111 §3.5) unless told to.
			storable := r.Method == http.MethodGet && !reqCC.noStore
			rec := &cacheRecorder{ResponseWriter: w}
			rec.onHead = func(status int, h http.Header) {
				if !storable {
					return
				}
				rec.entry = c.admit(r, status, h)
			}
			Decide(r, name, Allowed)
			next.ServeHTTP(rec, r)
			if rec.entry != nil && !rec.overflow && !rec.failed {
				rec.entry.Body = rec.body.Bytes()
				store.put(context.WithoutCancel(ctx), key, rec.entry)
			}
		})
	}, nil
}

// admit decides whether a response may be stored and returns its entry
// (without the body), or nil.
func (c *compiledCaching) admit(r *http.Request, status int, h http.Header) *cacheEntry {
	if c.respCodes != nil {
		if !c.respCodes[status] {
			return nil
		}
	} else if !c.respExpr.Bool(&dw.Env{Request: r, Status: status, RespHeader: h}) {
		return nil
	}
	if len(h.Values("Set-Cookie")) > 0 {
		return nil // one client's cookie must never reach another
	}
	vary := h.Values("Vary")
	var varyVals map[string]string
	for _, v := range vary {
		for _, n := range strings.Split(v, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if n == "*" {
				return nil
			}
			if varyVals == nil {
				varyVals = map[string]string{}
			}
			varyVals[http.CanonicalHeaderKey(n)] = strings.Join(r.Header.Values(n), ",")
		}
	}
	now := time.Now()
	life := c.ttl
	cc := parseCacheControl(h.Values("Cache-Control"))
	if r.Header.Get("Authorization") != "" && !(cc.public || cc.sMaxAge >= 0) {
		return nil
	}
	if c.headers {
		if cc.noStore || cc.noCache || cc.private {
			return nil
		}
		switch {
		case cc.sMaxAge >= 0:
			life = min(life, time.Duration(cc.sMaxAge)*time.Second)
		case cc.maxAge >= 0:
			life = min(life, time.Duration(cc.maxAge)*time.Second)
		default:
			if exp := h.Get("Expires"); exp != "" {
				t, err := http.ParseTime(exp)
				if err != nil {
					return nil // an invalid Expires means already expired (RFC 9111 §5.3)
				}
				base := now
				if d, err := http.ParseTime(h.Get("Date")); err == nil {
					base = d
				}
				life = min(life, t.Sub(base))
			}
		}
		if life <= 0 {
			return nil
		}
	}
	hdr := make(map[string][]string, len(h))
	for k, vs := range h {
		hdr[k] = append([]string(nil), vs...)
	}
	if _, ok := hdr["Date"]; !ok {
		hdr["Date"] = []string{now.UTC().Format(http.TimeFormat)}
	}
	return &cacheEntry{Status: status, Header: hdr, Stored: now, Expires: now.Add(life), Vary: varyVals}
}

func varyMatches(e *cacheEntry, r *http.Request) bool {
	for n, v := range e.Vary {
		if strings.Join(r.Header.Values(n), ",") != v {
			return false
		}
	}
	return true
}

func serveCached(w http.ResponseWriter, r *http.Request, e *cacheEntry) {
	h := w.Header()
	for k, vs := range e.Header {
		h[k] = vs
	}
	h.Set("Age", strconv.Itoa(int(time.Since(e.Stored)/time.Second)))
	h.Set("Content-Length", strconv.Itoa(len(e.Body)))
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.Body)
	}
}

// cacheRecorder passes the response through while keeping up to
// maxCachedBody bytes of it.
type cacheRecorder struct {
	http.ResponseWriter
	onHead   func(int, http.Header)
	wrote    bool
	entry    *cacheEntry
	body     bytes.Buffer
	overflow bool
	failed   bool
}

func (c *cacheRecorder) WriteHeader(code int) {
	if !c.wrote && code >= 200 {
		c.wrote = true
		c.onHead(code, c.ResponseWriter.Header())
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *cacheRecorder) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if c.entry != nil && !c.overflow {
		if c.body.Len()+len(b) > maxCachedBody {
			c.overflow = true
			c.body = bytes.Buffer{}
		} else {
			c.body.Write(b)
		}
	}
	n, err := c.ResponseWriter.Write(b)
	if err != nil {
		c.failed = true
	}
	return n, err
}

func (c *cacheRecorder) Flush() {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *cacheRecorder) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// SecretFields implements Secrets: none: cache keys and limits authenticate no one.
func (httpCaching) SecretFields() []string { return []string{} }

// HTTPCachingSpec is what of an http-caching-flex binding's validated
// configuration decides whether a per-replica RFC 9111 cache can stand in
// for it.
type HTTPCachingSpec struct {
	// Distributed shares the cache through Redis.
	Distributed bool
	// InvalidationHeader names the request header that purges an entry.
	InvalidationHeader string
}

// HTTPCachingSpecOf validates p's configuration and returns its HTTPCachingSpec.
func HTTPCachingSpecOf(p *ir.Policy) (*HTTPCachingSpec, error) {
	c, err := parseHTTPCaching(p.Config)
	if err != nil {
		return nil, err
	}
	return &HTTPCachingSpec{Distributed: c.distributed, InvalidationHeader: c.invalidate}, nil
}
