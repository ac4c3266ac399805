package translate

import (
	"fmt"
	"regexp"
	"strings"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	skipv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/matcher/action/v3"
	envoymatcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/flexgw/flexgw/ir"
)

// withRules restricts a policy filter to the requests its binding's rules
// match, as the built-in data plane does (rules OR'd, a rule's fields
// AND'd, the path without the API's base path): the filter is wrapped in
// an ExtensionWithMatcher whose matcher skips it when no rule matches.
//
// :path carries the query string, so path regexes allow one; the base path
// itself is the rule path "/" (ir.MatchPath).
func withRules(name string, cfg proto.Message, rules []ir.Rule, basePath string) (proto.Message, error) {
	var preds []*xdsmatcherv3.Matcher_MatcherList_Predicate
	for _, r := range rules {
		p, err := rulePredicate(r, strings.TrimSuffix(basePath, "/"))
		if err != nil {
			return nil, err
		}
		if p == nil {
			return cfg, nil // an empty rule matches everything
		}
		preds = append(preds, p)
	}
	if len(preds) == 0 {
		return cfg, nil
	}
	anyRule := orPredicates(preds)
	skip, err := anypb.New(&skipv3.SkipFilter{})
	if err != nil {
		return nil, err
	}
	inner, err := toAny(cfg)
	if err != nil {
		return nil, err
	}
	return &matchingv3.ExtensionWithMatcher{
		ExtensionConfig: &corev3.TypedExtensionConfig{Name: name, TypedConfig: inner},
		XdsMatcher: &xdsmatcherv3.Matcher{MatcherType: &xdsmatcherv3.Matcher_MatcherList_{MatcherList: &xdsmatcherv3.Matcher_MatcherList{
			Matchers: []*xdsmatcherv3.Matcher_MatcherList_FieldMatcher{{
				Predicate: &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_NotMatcher{NotMatcher: anyRule}},
				OnMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: &xdscorev3.TypedExtensionConfig{
					Name: "skip", TypedConfig: skip,
				}}},
			}},
		}}},
	}, nil
}

// rulePredicate is one rule as an AND of header predicates; nil when the
// rule sets nothing.
func rulePredicate(r ir.Rule, base string) (*xdsmatcherv3.Matcher_MatcherList_Predicate, error) {
	var and []*xdsmatcherv3.Matcher_MatcherList_Predicate
	add := func(header, re string) error {
		p, err := headerPredicate(header, re)
		if err != nil {
			return err
		}
		and = append(and, p)
		return nil
	}
	if r.Path != nil {
		re := "^" + regexp.QuoteMeta(base) + "(?:" + r.Path.Source + ")"
		if base != "" && r.Path.MatchString("/") {
			re = "^" + regexp.QuoteMeta(base) + "(?:(?:" + r.Path.Source + ")|)"
		}
		if err := add(":path", re+`(?:\?.*)?$`); err != nil {
			return nil, err
		}
	}
	if r.Methods != nil {
		if err := add(":method", "^(?:"+r.Methods.Source+")$"); err != nil {
			return nil, err
		}
	}
	if r.Host != nil {
		if err := add(":authority", ir.HostPattern(r.Host)); err != nil {
			return nil, err
		}
	}
	for _, h := range r.Headers {
		if err := add(strings.ToLower(h.Name), "^(?:"+h.Value.Source+")$"); err != nil {
			return nil, err
		}
	}
	switch len(and) {
	case 0:
		return nil, nil
	case 1:
		return and[0], nil
	}
	return &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_AndMatcher{
		AndMatcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_PredicateList{Predicate: and},
	}}, nil
}

func orPredicates(ps []*xdsmatcherv3.Matcher_MatcherList_Predicate) *xdsmatcherv3.Matcher_MatcherList_Predicate {
	if len(ps) == 1 {
		return ps[0]
	}
	return &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_OrMatcher{
		OrMatcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_PredicateList{Predicate: ps},
	}}
}

func headerPredicate(header, re string) (*xdsmatcherv3.Matcher_MatcherList_Predicate, error) {
	if _, err := regexp.Compile(re); err != nil {
		return nil, fmt.Errorf("rule on %s: %w", header, err)
	}
	input, err := anypb.New(&envoymatcherv3.HttpRequestHeaderMatchInput{HeaderName: header})
	if err != nil {
		return nil, err
	}
	return &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_{
		SinglePredicate: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate{
			Input: &xdscorev3.TypedExtensionConfig{Name: "request-headers", TypedConfig: input},
			Matcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{ValueMatch: &xdsmatcherv3.StringMatcher{
				MatchPattern: &xdsmatcherv3.StringMatcher_SafeRegex{SafeRegex: &xdsmatcherv3.RegexMatcher{
					Regex:      re,
					EngineType: &xdsmatcherv3.RegexMatcher_GoogleRe2{GoogleRe2: &xdsmatcherv3.RegexMatcher_GoogleRE2{}},
				}},
			}},
		},
	}}, nil
}
