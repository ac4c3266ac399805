package policyfilter

// Policies Envoy has no filter for: Envoy asks the agent's policy engine,
// which runs the built-in middleware, through ext_authz.
func init() {
	registerAll(ExtAuthz,
		"client-id-enforcement",                       // the credentials (file or Redis) live with the agent
		"credential-injection-oauth2-flex",            // the agent holds and refreshes the token
		"oauth2-token-introspection-flex",             // the agent calls the introspection endpoint and caches
		"message-logging-flex",                        // the agent logs the request section (firstSection); secondSection needs the built-in data plane
		"message-logging-outbound-flex",               // the same, on the routes reaching the bound Service
		"spike-control-flex",                          // Envoy has no delaying limiter
		"ldap-authentication-flex",                    // Envoy has no LDAP filter: the agent searches and binds
		"openidconnect-access-token-enforcement-flex", // the agent runs discovery, introspection or JWKS, and the cache
	)
	// Body checkers: Envoy has no JSON or XML limits filter, so the agent
	// runs the same checker on the buffered body.
	registerAll(ExtAuthzBody, "json-threat-protection-flex", "xml-threat-protection-flex", "xml-threat-protection",
		"spec-validation-flex", // kin-openapi in the agent validates the request and its body against the spec
	)
}
