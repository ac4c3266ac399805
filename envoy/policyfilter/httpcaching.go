package policyfilter

import (
	cachev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cache/v3"
	simplecachev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/cache/simple_http_cache/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func init() { Register("http-caching-flex", httpCaching) }

// httpCaching renders http-caching-flex with Envoy's cache filter and its
// in-memory SimpleHttpCache, which follows RFC 9111 (Cache-Control, Vary
// with the listed headers allowed, Age). Envoy keys by the request URL;
// httpCachingKey, maxCacheEntries, ttl, the invalidation header, the
// request/response expressions and `distributed` are built-in data plane
// features; a config that needs them is refused here so Envoy never
// silently caches differently.
func httpCaching(_ Env, p *ir.Policy) ([]Filter, error) {
	c, err := policy.HTTPCachingSpecOf(p)
	if err != nil {
		return nil, err
	}
	if c.Distributed {
		return nil, fieldErr("distributed", "a cache shared through Redis needs the built-in data plane; Envoy's cache filter is per replica")
	}
	if c.InvalidationHeader != "" {
		return nil, fieldErr("invalidationHeader", "not available on Envoy's cache filter; needs the built-in data plane")
	}
	simple, err := anypb.New(&simplecachev3.SimpleHttpCacheConfig{})
	if err != nil {
		return nil, err
	}
	return []Filter{{Name: FilterName(p), Config: &cachev3.CacheConfig{
		TypedConfig: simple,
		AllowedVaryHeaders: []*matcherv3.StringMatcher{
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "accept-encoding"}},
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "accept-language"}},
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "accept"}},
		},
	}}}, nil
}
