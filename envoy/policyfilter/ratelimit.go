package policyfilter

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlsconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy"
)

func init() { Register("rate-limiting-flex", rateLimiting) }

// rateLimiting renders rate-limiting-flex. A clusterizable limit with
// shared storage renders the ratelimit filter calling the agent's
// RateLimitService (policy/rls), which counts in the same Redis keys as
// the built-in data plane; otherwise each limit renders local_ratelimit, a
// token bucket refilled to maximumRequests every period (per Envoy
// replica; the keySelector is not applied locally). A keySelector Envoy's
// rate limit actions cannot compute, or a period under local_ratelimit's
// 50 ms, renders ext_authz: the agent runs the built-in middleware.
func rateLimiting(env Env, p *ir.Policy) ([]Filter, error) {
	c, err := policy.RateLimitSpecOf(p)
	if err != nil {
		return nil, err
	}
	shared := c.Clusterizable && env.Snapshot != nil &&
		env.Snapshot.SharedStorage != nil && env.Snapshot.SharedStorage.Redis != nil
	if !shared {
		var out []Filter
		for i, l := range c.Windows {
			if l.PeriodMillis < 50 {
				// local_ratelimit refills at most every 50 ms: the agent counts.
				return ExtAuthz(env, p)
			}
			lr := &localrlv3.LocalRateLimit{
				StatPrefix: "flexgw_rate_limit",
				Status:     &typev3.HttpStatus{Code: typev3.StatusCode_TooManyRequests},
				TokenBucket: &typev3.TokenBucket{
					MaxTokens:     uint32(l.MaximumRequests),
					TokensPerFill: wrapperspb.UInt32(uint32(l.MaximumRequests)),
					FillInterval:  durationpb.New(time.Duration(l.PeriodMillis) * time.Millisecond),
				},
				FilterEnabled:          percent100(),
				FilterEnforced:         percent100(),
				EnableRetryAfterHeader: true,
			}
			if c.ExposeHeaders {
				lr.EnableXRatelimitHeaders = commonrlv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03
			}
			out = append(out, Filter{Name: FilterName(p, strconv.Itoa(i)), Config: lr})
		}
		return out, nil
	}
	keyAction, err := envoyKeyAction(c.KeySelector)
	if err != nil {
		if strings.Contains(c.KeySelector, "authentication.") || strings.Contains(c.KeySelector, "claimSet") {
			// On Envoy, jwt_authn verifies the token, not the agent: an
			// ext_authz check would see no claims and share one quota.
			return nil, fieldErr("keySelector", "%q reads JWT claims, which Envoy's rate limit cannot see; forward the claim with jwt-validation-flex claimsToHeaders and key on that header", c.KeySelector)
		}
		// A key Envoy cannot compute (a query parameter, a concatenation):
		// the agent runs the same middleware (ext_authz) on the same Redis.
		return ExtAuthz(env, p)
	}
	api := apiName(env)
	var limits []*routev3.RateLimit
	for i, l := range c.Windows {
		actions := []*routev3.RateLimit_Action{
			genericKey(policy.DescriptorBucket, policy.RateLimitBucket(api, p.Binding, i, l.MaximumRequests, l.PeriodMillis)),
			genericKey(policy.DescriptorLimit, fmt.Sprintf("%d/%d", l.MaximumRequests, l.PeriodMillis)),
		}
		if keyAction != nil {
			actions = append(actions, keyAction)
		}
		limits = append(limits, &routev3.RateLimit{Actions: actions})
	}
	cl, err := AgentCluster(env)
	if err != nil {
		return nil, err
	}
	rl := &ratelimitv3.RateLimit{
		Domain: policy.RateLimitDomain,
		RateLimitService: &rlsconfv3.RateLimitServiceConfig{
			GrpcService: &corev3.GrpcService{
				TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: AgentClusterName}},
				Timeout:         durationpb.New(time.Second),
			},
			TransportApiVersion: corev3.ApiVersion_V3,
		},
		// failOpen=false: an unreachable RLS (or Redis behind it) is a 503.
		FailureModeDeny:        !c.FailOpen,
		StatusOnError:          &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
		RateLimits:             limits,
		EnableRetryAfterHeader: true,
		StatPrefix:             "flexgw_rate_limit",
	}
	if c.ExposeHeaders {
		rl.EnableXRatelimitHeaders = ratelimitv3.RateLimit_DRAFT_VERSION_03
	}
	return []Filter{{Name: FilterName(p), Config: rl, Clusters: []*clusterv3.Cluster{cl}}}, nil
}

func genericKey(key, value string) *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
		GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: key, DescriptorValue: value},
	}}
}

// envoyKeyAction maps the keySelector expressions Envoy can compute.
func envoyKeyAction(sel string) (*routev3.RateLimit_Action, error) {
	if sel == "" {
		return nil, nil
	}
	n := strings.ReplaceAll(strings.ReplaceAll(sel, " ", ""), `"`, `'`)
	header := ""
	switch {
	case n == "#[attributes.method]":
		header = ":method"
	case n == "#[attributes.host]":
		header = ":authority"
	case n == "#[attributes.remoteAddress]":
		return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{RemoteAddress: &routev3.RateLimit_Action_RemoteAddress{}}}, nil
	case strings.HasPrefix(n, "#[attributes.headers['") && strings.HasSuffix(n, "']]"):
		header = strings.ToLower(n[len("#[attributes.headers['") : len(n)-3])
	default:
		return nil, fieldErr("keySelector", "%q cannot be computed by Envoy's rate limit actions (use a header, method, host or remoteAddress)", sel)
	}
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{
		HeaderName: header, DescriptorKey: policy.DescriptorKey, SkipIfAbsent: true,
	}}}, nil
}
