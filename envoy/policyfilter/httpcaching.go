package policyfilter

import (
	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func init() { Register("http-caching-flex", httpCaching) }

// httpCaching renders http-caching-flex as an ext_proc filter to the
// agent, which runs the built-in cache on the request and the response
// Envoy streams to it. Envoy's own cache filter keys by URL, knows no TTL
// cap, entry limit, key or request/response expression, invalidation
// header or Redis-shared store, so it cannot mean what Flex's fields say;
// the agent's cache is the one both data planes run (per agent, or shared
// through Redis with distributed: true).
func httpCaching(env Env, p *ir.Policy) ([]Filter, error) {
	if _, err := policy.HTTPCachingSpecOf(p); err != nil {
		return nil, err
	}
	return AgentExtProc(env, p, true)
}
