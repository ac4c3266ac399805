// Package crd describes Flex Gateway's four Local Mode kinds (ApiInstance,
// Service, PolicyBinding, Configuration) as Kubernetes CustomResourceDefinitions
// with structural OpenAPI v3 schemas, a status subresource, and CEL rules
// whose messages are the ones `flexgw validate` prints, so the API server
// rejects what it can with the gateway's own words.
//
// The schema is declared here once, field by field, beside the YAML decoder
// of package config; schema_test.go proves at every level of every kind that
// the schema's fields are exactly the fields the decoder accepts (it asks
// the decoder itself, through its "unknown field (expected one of ...)"
// message), so the two cannot drift apart unnoticed. `go generate` writes the
// CRD files of charts/flexgw/crds; crd_test.go fails when they are stale.
package crd

import "fmt"

//go:generate go run ./gen -out ../../charts/flexgw/crds

// Schema is the subset of OpenAPI v3 (plus the x-kubernetes extensions) a
// structural CRD schema needs.
type Schema struct {
	Type        string             `yaml:"type,omitempty"`
	Description string             `yaml:"description,omitempty"`
	Properties  map[string]*Schema `yaml:"properties,omitempty"`
	Required    []string           `yaml:"required,omitempty"`
	Items       *Schema            `yaml:"items,omitempty"`
	// AdditionalProperties describes maps whose keys are user names.
	AdditionalProperties *Schema  `yaml:"additionalProperties,omitempty"`
	Enum                 []string `yaml:"enum,omitempty"`
	Format               string   `yaml:"format,omitempty"`
	Minimum              *int     `yaml:"minimum,omitempty"`
	Maximum              *int     `yaml:"maximum,omitempty"`
	MinItems             *int     `yaml:"minItems,omitempty"`
	// MaxItems and MaxProperties bound the lists and maps whose entries
	// carry CEL rules: the API server refuses a CRD whose rules, times the
	// entries they may run on, exceed its cost budget.
	MaxItems      *int `yaml:"maxItems,omitempty"`
	MaxProperties *int `yaml:"maxProperties,omitempty"`
	MaxLength     *int `yaml:"maxLength,omitempty"`
	// IntOrString admits an integer or a string ("5s", "$RETRIES"): config
	// expands environment variables and reads durations both ways.
	IntOrString bool `yaml:"x-kubernetes-int-or-string,omitempty"`
	// Preserve keeps fields the schema does not list (policy configs:
	// each policy checks its own config when the gateway compiles).
	Preserve bool         `yaml:"x-kubernetes-preserve-unknown-fields,omitempty"`
	Rules    []Validation `yaml:"x-kubernetes-validations,omitempty"`
	// ListType and ListMapKeys make a list a map keyed by fields (status
	// conditions, keyed by type), so server-side apply merges entries.
	ListType    string   `yaml:"x-kubernetes-list-type,omitempty"`
	ListMapKeys []string `yaml:"x-kubernetes-list-map-keys,omitempty"`
}

// Validation is one CEL rule; MessageExpression builds the message the
// decoder of package config gives for the same mistake.
type Validation struct {
	Rule              string `yaml:"rule"`
	Message           string `yaml:"message,omitempty"`
	MessageExpression string `yaml:"messageExpression,omitempty"`
}

func obj(desc string, props map[string]*Schema, required ...string) *Schema {
	return &Schema{Type: "object", Description: desc, Properties: props, Required: required}
}

func str(desc string) *Schema { return &Schema{Type: "string", Description: desc} }

func boolean(desc string) *Schema { return &Schema{Type: "boolean", Description: desc} }

func number(desc string) *Schema { return &Schema{Type: "number", Description: desc} }

// intOrStr is an integer field that may also be written as a string
// (a $VAR reference or, for durations, "5s").
func intOrStr(desc string) *Schema { return &Schema{IntOrString: true, Description: desc} }

func list(desc string, item *Schema) *Schema {
	return &Schema{Type: "array", Description: desc, Items: item}
}

func dict(desc string, value *Schema) *Schema {
	return &Schema{Type: "object", Description: desc, AdditionalProperties: value}
}

func free(desc string) *Schema { return &Schema{Type: "object", Description: desc, Preserve: true} }

// oneOf is a string restricted to values, rejected with the decoder's message.
func oneOf(desc, message string, values ...string) *Schema {
	s := str(desc)
	s.MaxLength = ptr(256)
	quoted := ""
	for i, v := range values {
		if i > 0 {
			quoted += ", "
		}
		quoted += "'" + v + "'"
	}
	s.Rules = []Validation{{Rule: "self in [" + quoted + "]", MessageExpression: message}}
	return s
}

// address is protocol://host:port[/path]; the rule catches the mistakes
// config's parseAddress names most often, in its words.
func address(desc string) *Schema {
	s := str(desc)
	s.MaxLength = ptr(2048) // bounds the CEL rules' cost
	s.Rules = []Validation{
		{Rule: "self.contains('://') || self.startsWith('$')", MessageExpression: `'"' + self + '" has no protocol (expected http://host:port or https://host:port)'`},
		{Rule: "!self.contains('://') || self.startsWith('$') || self.split('://')[0].lowerAscii() in ['http', 'https']", MessageExpression: `'protocol "' + self.split('://')[0] + '" is not supported (expected http or https)'`},
	}
	return s
}

func ptr(i int) *int { return &i }

// bounded sets a list's maxItems or a map's maxProperties to n.
func bounded(n int, s *Schema) *Schema {
	if s.Type == "array" {
		s.MaxItems = ptr(n)
	} else {
		s.MaxProperties = ptr(n)
	}
	s.Description += fmt.Sprintf(" At most %d in Kubernetes (the API server's CEL cost budget).", n)
	return s
}

// rules is a Flex rules list: regular expressions on path, methods, host
// and headers.
func rules() *Schema {
	return list("Requests the route or policy applies to; every field is a regular expression.", obj("", map[string]*Schema{
		"path":        str("Path regular expression; capture groups rewrite the upstream path."),
		"methods":     str("Method regular expression, e.g. GET|HEAD."),
		"host":        str("Host regular expression."),
		"headers":     dict("Header name to value regular expression.", str("")),
		"queryParams": dict("Query parameter name to a regular expression its first value must match (routes only; flexgw extension).", str("")),
	}))
}

func policyRef() *Schema {
	return obj("The policy, by Flex name (rate-limiting-flex, jwt-validation-flex, ...).", map[string]*Schema{
		"kind":      oneOf("Extension (Flex's kind for policies; optional).", `'must be Extension, got "' + self + '"'`, "Extension"),
		"name":      str("Policy name."),
		"namespace": str("Policy namespace (ignored; Flex's policies are built in)."),
	}, "name")
}

// upstream is the service fields shared by Service resources and inline
// services, including flexgw's extensions.
func upstream(extra map[string]*Schema) map[string]*Schema {
	props := map[string]*Schema{
		"address":   address("Upstream protocol://host:port[/path]."),
		"endpoints": list("Extra endpoints balanced with address (flexgw extension).", str("")),
		"loadBalancer": oneOf("round-robin (default) or least-request (flexgw extension).",
			`'unknown load balancer "' + self + '" (expected round-robin or least-request)'`, "round-robin", "least-request"),
		"http2":          boolean("Speak HTTP/2 to the upstream (flexgw extension)."),
		"connectTimeout": intOrStr("Connect timeout: a duration (\"2s\") or milliseconds (flexgw extension)."),
		"healthCheck": obj("Active health checks (flexgw extension).", map[string]*Schema{
			"path":               str("Path probed."),
			"interval":           intOrStr("Time between checks."),
			"timeout":            intOrStr("Time a check may take."),
			"healthyThreshold":   intOrStr("Successes before an endpoint is healthy again."),
			"unhealthyThreshold": intOrStr("Failures before an endpoint is unhealthy."),
			"expectedStatuses":   list("Statuses counted as healthy.", intOrStr("")),
		}),
		"passiveHealth": obj("Outlier ejection (flexgw extension).", map[string]*Schema{
			"enabled":             boolean("On by default."),
			"consecutiveFailures": intOrStr("Failures that eject an endpoint."),
			"ejectionTime":        intOrStr("How long an endpoint stays ejected."),
			"maxEjectionPercent":  intOrStr("At most this share of endpoints is ejected."),
		}),
	}
	for k, v := range extra {
		props[k] = v
	}
	return props
}

func routeConfig() map[string]*Schema {
	return map[string]*Schema{
		"destinationPath": str("Prefix of the upstream path."),
		"timeout":         intOrStr("Route timeout (flexgw extension)."),
		"retries":         intOrStr("Retries on failure, 0 to 10 (flexgw extension)."),
		"websocket":       boolean("false refuses WebSocket upgrades on this route with 403 (flexgw extension; default: the ApiInstance's, else allowed)."),
		"requestHeaders":  headerMutation("Header changes on the request going upstream, after every policy (flexgw extension)."),
		"responseHeaders": headerMutation("Header changes on the response, before any policy sees it (flexgw extension)."),
		"hostRewrite":     str("Host header the upstream receives (flexgw extension)."),
	}
}

// headerMutation is a requestHeaders/responseHeaders extension.
func headerMutation(desc string) *Schema {
	kv := obj("", map[string]*Schema{"name": str("Header name."), "value": str("Header value.")}, "name")
	return obj(desc, map[string]*Schema{
		"set":    bounded(16, list("Headers to set, replacing any value.", kv)),
		"add":    bounded(16, list("Headers to add, keeping any value.", kv)),
		"remove": bounded(16, list("Header names to remove (first).", str(""))),
	})
}

// maxEntries bounds the inline services and policies of an ApiInstance
// and a tracing configuration's labels.
const maxEntries = 256

// Kind is one CRD: its names and the schema of its spec.
type Kind struct {
	Kind     string
	Plural   string
	Singular string
	Short    []string
	// Versions served; the first is the storage version.
	Versions []string
	Spec     *Schema
	// Columns are extra kubectl get columns (JSON paths).
	Columns []Column
}

// Column is one additionalPrinterColumns entry.
type Column struct {
	Name, Type, JSONPath string
}

// Group is the API group of every kind.
const Group = "gateway.mulesoft.com"

// Kinds returns the four kinds, in the order their CRD files are written.
func Kinds() []Kind {
	status := []Column{
		{Name: "Accepted", Type: "string", JSONPath: `.status.conditions[?(@.type=="Accepted")].status`},
		{Name: "Programmed", Type: "string", JSONPath: `.status.conditions[?(@.type=="Programmed")].status`},
	}
	return []Kind{
		{
			Kind: "ApiInstance", Plural: "apiinstances", Singular: "apiinstance", Short: []string{"api"},
			Versions: []string{"v1alpha1"},
			Columns:  append([]Column{{Name: "Address", Type: "string", JSONPath: ".spec.address"}}, status...),
			Spec: obj("An API the gateway serves on an address, with inline services, routes and policies.", map[string]*Schema{
				"address": address("protocol://host:port[/path] the API listens on; the path is its base path."),
				"services": bounded(maxEntries, dict("Inline services by name.", obj("", upstream(map[string]*Schema{
					"routes": list("Routes to this service; none means a catch-all route.", obj("", map[string]*Schema{
						"rules":  rules(),
						"config": obj("", routeConfig()),
					})),
				})))),
				"policies": bounded(maxEntries, list("Inline policies, applied in order.", obj("", map[string]*Schema{
					"policyRef": policyRef(),
					"config":    free("The policy's configuration; the gateway checks it when it compiles."),
					"rules":     rules(),
					"order":     intOrStr("Lower runs first (default 50)."),
				}, "policyRef"))),
				"websocket": boolean("false refuses WebSocket upgrades with 403 on the routes that do not set their own (flexgw extension; default allowed)."),
			}, "address"),
		},
		{
			Kind: "Service", Plural: "services", Singular: "service", Short: []string{"flexsvc"},
			Versions: []string{"v1alpha1"},
			Columns:  append([]Column{{Name: "Address", Type: "string", JSONPath: ".spec.address"}}, status...),
			Spec:     obj("An upstream that route bindings send requests to.", upstream(nil), "address"),
		},
		{
			Kind: "PolicyBinding", Plural: "policybindings", Singular: "policybinding", Short: []string{"pb"},
			// Flex's newer pages write v1beta1 (config/ accepts both).
			Versions: []string{"v1alpha1", "v1beta1"},
			Columns: append([]Column{
				{Name: "Target", Type: "string", JSONPath: ".spec.targetRef.name"},
				{Name: "Policy", Type: "string", JSONPath: ".spec.policyRef.name"},
			}, status...),
			Spec: obj("Applies a policy, or a route (policyRef route / route-weighted), to an ApiInstance or Service.", map[string]*Schema{
				"targetRef": obj("What the policy applies to.", map[string]*Schema{
					// Ingress and HTTPRoute are targets only for the Kubernetes
					// source, which maps them to the ApiInstance it derives.
					"kind": oneOf("ApiInstance, Service (found by name when absent) or Selector; in Kubernetes also Ingress or HTTPRoute.",
						`'must be ApiInstance, Service or Selector, got "' + self + '"'`, "ApiInstance", "Service", "Selector", "Ingress", "HTTPRoute"),
					"name":      str("Target name (not with kind Selector)."),
					"namespace": str("Target namespace (default: the binding's)."),
					"selector": obj("With kind Selector: the ApiInstances the policy applies to.", map[string]*Schema{
						"kind":   str("ApiInstance."),
						"labels": dict("Labels the ApiInstances must have; none selects all.", str("")),
					}),
				}),
				"policyRef": policyRef(),
				"config":    free("The policy's configuration, or the route's destinations."),
				"order":     intOrStr("Lower runs first (default 50)."),
				"rules":     rules(),
			}, "targetRef", "policyRef"),
		},
		{
			Kind: "Configuration", Plural: "configurations", Singular: "configuration", Short: []string{"flexconf"},
			Versions: []string{"v1beta1", "v1alpha1"},
			Columns:  status,
			Spec: obj("Gateway-wide settings: log outputs, shared storage, tracing (v1beta1).", map[string]*Schema{
				"logging": obj("Where runtime and access logs go.", map[string]*Schema{
					"outputs": list("Named Fluent Bit outputs.", obj("", map[string]*Schema{
						"name":       str("Output name, referenced by accessLogs and runtimeLogs."),
						"type":       str("Fluent Bit output type (splunk, nrlogs, http, file, stdout, ...)."),
						"parameters": dict("Output parameters: strings (numbers and booleans as Fluent Bit reads them), or a list of strings for a key Fluent Bit repeats (the http output's header).", &Schema{Preserve: true}),
					}, "name", "type")),
					"accessLogs": obj("", map[string]*Schema{"outputs": list("Output names.", str(""))}),
					"runtimeLogs": obj("", map[string]*Schema{
						"logLevel": oneOf("debug, info, warn, error or fatal.",
							`'unknown level "' + self + '" (expected debug, info, warn, error, fatal)'`, "debug", "info", "warn", "error", "fatal"),
						"outputs": list("Output names.", str("")),
					}),
				}),
				"sharedStorage": obj("Storage shared by replicas (rate limits, caches).", map[string]*Schema{
					"local": obj("", map[string]*Schema{"enabled": boolean("")}),
					"redis": obj("A Redis server.", map[string]*Schema{
						"address":  str("host:port."),
						"username": str(""),
						"user":     str("Username (Flex's other spelling)."),
						"password": str(""),
						"db":       intOrStr("Database number."),
						"DB":       intOrStr("Database number (Flex's example spells it DB)."),
						"tls":      tlsSchema(),
					}, "address"),
				}),
				"timeouts": obj("Gateway-wide timeouts, in seconds.", map[string]*Schema{
					"upstreamConnectionIdleSeconds": number(""),
					"upstreamResponseSeconds":       number(""),
					"streamIdleSeconds":             number(""),
				}),
				"circuitBreaker": obj("Default circuit breaker thresholds (directly or under thresholds).", cbProps(true)),
				"defaultTLS": obj("", map[string]*Schema{
					"outboundPolicyCalls": tlsSchema(),
				}),
				"tracing": obj("Distributed tracing (apiVersion v1beta1 only).", map[string]*Schema{
					"provider": obj("", map[string]*Schema{
						"type":       str("opentelemetry or anypoint."),
						"properties": free("Provider properties."),
					}, "type"),
					"sampling": obj("", map[string]*Schema{
						"client":  number("Percentage."),
						"random":  number("Percentage."),
						"overall": number("Percentage."),
					}),
					"labels": bounded(maxEntries, list("Span labels.", obj("", map[string]*Schema{
						"name": str(""),
						"type": oneOf("literal, environment or requestHeader.",
							`'must be one of literal, environment, requestHeader, got "' + self + '"'`, "literal", "environment", "requestHeader"),
						"keyName":      str(""),
						"defaultValue": str(""),
					}, "name"))),
				}, "provider"),
			}),
		},
	}
}

// tlsSchema is a TLS context as config reads it (Redis, defaultTLS).
func tlsSchema() *Schema {
	return obj("", map[string]*Schema{
		"trustedCA": str("PEM CA bundle."),
		"certificate": obj("", map[string]*Schema{
			"key":           str(""),
			"crt":           str(""),
			"keyPassphrase": str(""),
		}),
		"alpn":           list("", str("")),
		"skipValidation": boolean(""),
		"minversion":     str(""),
		"maxversion":     str(""),
		"minVersion":     str(""),
		"maxVersion":     str(""),
		"ciphers":        list("", str("")),
	})
}

// cbProps is the circuit breaker thresholds, with the thresholds: nesting
// Flex's policy uses when nested is set.
func cbProps(nested bool) map[string]*Schema {
	props := map[string]*Schema{}
	for _, n := range []string{"maxConnections", "maxPendingRequests", "maxRequests", "maxRetries", "maxConnectionPools"} {
		props[n] = intOrStr("")
	}
	if nested {
		props["thresholds"] = obj("", cbProps(false))
	}
	return props
}
