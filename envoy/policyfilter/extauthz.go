package policyfilter

// Policies Envoy has no filter for: Envoy asks the agent's policy engine,
// which runs the built-in middleware, through ext_authz.
func init() {
	registerAll(ExtAuthz,
		"client-id-enforcement",            // the credentials (file or Redis) live with the agent
		"credential-injection-oauth2-flex", // the agent holds and refreshes the token
		"oauth2-token-introspection-flex",  // the agent calls the introspection endpoint and caches
		"message-logging-flex",             // the agent logs the request section (firstSection); secondSection needs the built-in data plane
		"spike-control-flex",               // Envoy has no delaying limiter
	)
	// Body checkers: Envoy has no JSON or XML limits filter, so the agent
	// runs the same checker on the buffered body.
	registerAll(ExtAuthzBody, "json-threat-protection-flex", "xml-threat-protection-flex", "xml-threat-protection",
		"spec-validation-flex", // kin-openapi in the agent validates the request and its body against the spec
	)
}
