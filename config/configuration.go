package config

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

func (d *decoder) configuration(spec *yaml.Node) *Configuration {
	c := &Configuration{Meta: *d.meta}
	d.meta = &c.Meta
	fs := d.fields(spec, "spec", "logging", "sharedStorage", "tracing", "timeouts", "circuitBreaker", "defaultTLS")
	if f, ok := fs["logging"]; ok && !isNull(f.value) {
		c.Logging = d.logging(f.value)
	}
	if f, ok := fs["sharedStorage"]; ok && !isNull(f.value) {
		c.SharedStorage = d.sharedStorage(f.value)
	}
	if f, ok := fs["tracing"]; ok && !isNull(f.value) {
		if c.APIVersion != V1Beta1 {
			d.errorf(f.key, "spec.tracing", "requires apiVersion %s", V1Beta1)
		}
		c.Tracing = d.tracing(f.value)
	}
	if f, ok := fs["timeouts"]; ok && !isNull(f.value) {
		c.Timeouts = d.timeouts(f.value)
	}
	if f, ok := fs["circuitBreaker"]; ok && !isNull(f.value) {
		c.CircuitBreaker = d.circuitBreaker(f.value)
	}
	if f, ok := fs["defaultTLS"]; ok && !isNull(f.value) {
		c.DefaultTLS = &DefaultTLS{Line: f.value.Line}
		tf := d.fields(f.value, "spec.defaultTLS", "outboundPolicyCalls")
		if o, ok := tf["outboundPolicyCalls"]; ok && !isNull(o.value) {
			c.DefaultTLS.OutboundPolicyCalls = d.redisTLS(o.value, "spec.defaultTLS.outboundPolicyCalls")
		}
	}
	return c
}

// timeouts decodes spec.timeouts; Flex writes whole seconds.
func (d *decoder) timeouts(n *yaml.Node) *Timeouts {
	const p = "spec.timeouts"
	t := &Timeouts{Line: n.Line}
	fs := d.fields(n, p, "upstreamConnectionIdleSeconds", "upstreamResponseSeconds", "streamIdleSeconds")
	for name, dst := range map[string]*time.Duration{
		"upstreamConnectionIdleSeconds": &t.UpstreamConnectionIdle,
		"upstreamResponseSeconds":       &t.UpstreamResponse,
		"streamIdleSeconds":             &t.StreamIdle,
	} {
		f, ok := fs[name]
		if !ok || isNull(f.value) {
			continue
		}
		if v, ok := d.number(f.value, p+"."+name); ok {
			if v <= 0 {
				d.errorf(f.value, p+"."+name, "must be a positive number of seconds, got %v", v)
				continue
			}
			*dst = time.Duration(v * float64(time.Second))
		}
	}
	return t
}

// circuitBreaker decodes spec.circuitBreaker. Flex's policy nests the
// same thresholds under `thresholds:`; both spellings are accepted.
func (d *decoder) circuitBreaker(n *yaml.Node) *CircuitBreakerDefaults {
	p := "spec.circuitBreaker"
	cb := &CircuitBreakerDefaults{Line: n.Line}
	names := []string{"maxConnections", "maxPendingRequests", "maxRequests", "maxRetries", "maxConnectionPools"}
	fs := d.fields(n, p, append([]string{"thresholds"}, names...)...)
	if th, ok := fs["thresholds"]; ok {
		if len(fs) > 1 {
			d.errorf(th.key, p+".thresholds", "write the thresholds either under thresholds: or directly under circuitBreaker:, not both")
		}
		p += ".thresholds"
		fs = d.fields(th.value, p, names...)
	}
	dst := []*int{&cb.MaxConnections, &cb.MaxPendingRequests, &cb.MaxRequests, &cb.MaxRetries, &cb.MaxConnectionPools}
	for i, name := range names {
		f, ok := fs[name]
		if !ok || isNull(f.value) {
			continue
		}
		if v, ok := d.integer(f.value, p+"."+name); ok {
			if v <= 0 {
				d.errorf(f.value, p+"."+name, "must be > 0, got %d", v)
				continue
			}
			*dst[i] = v
		}
	}
	return cb
}

var logLevels = []string{"debug", "info", "warn", "error", "fatal"}

func (d *decoder) logging(n *yaml.Node) *Logging {
	l := &Logging{Line: n.Line}
	fs := d.fields(n, "spec.logging", "outputs", "runtimeLogs", "accessLogs")
	names := map[string]bool{}
	for i, on := range d.seq(fs["outputs"].value, "spec.logging.outputs") {
		p := fmt.Sprintf("spec.logging.outputs[%d]", i)
		of := d.fields(on, p, "name", "type", "parameters")
		o := &LogOutput{Line: on.Line}
		if f, ok := of["name"]; ok {
			o.Name, _ = d.str(f.value, p+".name")
		}
		if o.Name == "" {
			d.errorf(on, p+".name", "required")
		} else if names[o.Name] {
			d.errorf(of["name"].value, p+".name", "duplicate output name %q", o.Name)
		}
		names[o.Name] = true
		if f, ok := of["type"]; ok {
			o.Type, _ = d.str(f.value, p+".type")
		}
		if o.Type == "" {
			d.errorf(on, p+".type", "required (a Fluent Bit output type such as splunk, nrlogs, http, file, stdout)")
		}
		// Fluent Bit sees every parameter as a string; lists (header) are
		// joined by newlines.
		o.Parameters = d.paramMap(of["parameters"].value, p+".parameters")
		l.Outputs = append(l.Outputs, o)
	}
	refs := func(n *yaml.Node, path string) []string {
		list := d.strList(n, path)
		for i, name := range list {
			if !names[name] {
				d.errorf(resolveItem(n, i), path, "output %q is not defined in spec.logging.outputs", name)
			}
		}
		return list
	}
	af := d.fields(fs["accessLogs"].value, "spec.logging.accessLogs", "outputs")
	l.AccessLogOutputs = refs(af["outputs"].value, "spec.logging.accessLogs.outputs")
	rf := d.fields(fs["runtimeLogs"].value, "spec.logging.runtimeLogs", "logLevel", "outputs")
	l.RuntimeLogOutputs = refs(rf["outputs"].value, "spec.logging.runtimeLogs.outputs")
	l.RuntimeLogLevel = "info"
	if f, ok := rf["logLevel"]; ok && !isNull(f.value) {
		if s, ok := d.str(f.value, "spec.logging.runtimeLogs.logLevel"); ok {
			s = strings.ToLower(s)
			if !contains(logLevels, s) {
				d.errorf(f.value, "spec.logging.runtimeLogs.logLevel", "unknown level %q (expected %s)", s, strings.Join(logLevels, ", "))
			} else {
				l.RuntimeLogLevel = s
			}
		}
	}
	return l
}

// resolveItem returns the i-th item of a sequence node, or n itself.
func resolveItem(n *yaml.Node, i int) *yaml.Node {
	n = resolve(n)
	if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}

func (d *decoder) sharedStorage(n *yaml.Node) *SharedStorage {
	s := &SharedStorage{Line: n.Line}
	fs := d.fields(n, "spec.sharedStorage", "redis", "local")
	if f, ok := fs["local"]; ok {
		lf := d.fields(f.value, "spec.sharedStorage.local", "enabled")
		if e, ok := lf["enabled"]; ok {
			s.Local, _ = d.boolean(e.value, "spec.sharedStorage.local.enabled")
		}
	}
	f, ok := fs["redis"]
	if !ok || isNull(f.value) {
		return s
	}
	const p = "spec.sharedStorage.redis"
	r := &Redis{Line: f.value.Line}
	// Flex's own example writes "DB"; its table writes "db". Accept both.
	// The rate-limiting and caching pages write "user"; the reference
	// guide writes "username". Both name the Redis ACL user.
	rf := d.fields(f.value, p, "address", "username", "user", "password", "db", "DB", "tls")
	if a, ok := rf["address"]; ok {
		r.Address, _ = d.str(a.value, p+".address")
	}
	if r.Address == "" {
		d.errorf(f.value, p+".address", "required (host:port)")
	} else if i := strings.LastIndexByte(r.Address, ':'); i <= 0 || i == len(r.Address)-1 || strings.Contains(r.Address, "://") {
		d.errorf(rf["address"].value, p+".address", "%q must be host:port", r.Address)
	}
	if v, ok := rf["username"]; ok {
		r.Username, _ = d.str(v.value, p+".username")
	}
	if v, ok := rf["user"]; ok {
		if _, both := rf["username"]; both {
			d.errorf(v.key, p+".user", "set either user or username, not both (they are the same setting)")
		} else {
			r.Username, _ = d.str(v.value, p+".user")
		}
	}
	if v, ok := rf["password"]; ok {
		r.Password, _ = d.str(v.value, p+".password")
	}
	for _, key := range []string{"db", "DB"} {
		if v, ok := rf[key]; ok {
			if db, ok := d.integer(v.value, p+"."+key); ok {
				if db < 0 {
					d.errorf(v.value, p+"."+key, "must not be negative")
				}
				r.DB = db
			}
		}
	}
	if t, ok := rf["tls"]; ok && !isNull(t.value) {
		r.TLS = d.redisTLS(t.value, p+".tls")
	}
	s.Redis = r
	return s
}

func (d *decoder) redisTLS(n *yaml.Node, p string) *RedisTLS {
	t := &RedisTLS{}
	fs := d.fields(n, p, "trustedCA", "certificate", "alpn", "skipValidation", "minversion", "maxversion", "minVersion", "maxVersion", "ciphers")
	if f, ok := fs["trustedCA"]; ok {
		t.TrustedCA, _ = d.str(f.value, p+".trustedCA")
	}
	if f, ok := fs["certificate"]; ok && !isNull(f.value) {
		cf := d.fields(f.value, p+".certificate", "key", "crt", "keyPassphrase")
		if v, ok := cf["key"]; ok {
			t.Key, _ = d.str(v.value, p+".certificate.key")
		}
		if v, ok := cf["crt"]; ok {
			t.Cert, _ = d.str(v.value, p+".certificate.crt")
		}
		if v, ok := cf["keyPassphrase"]; ok {
			t.KeyPassphrase, _ = d.str(v.value, p+".certificate.keyPassphrase")
		}
		if t.Key == "" {
			d.errorf(f.value, p+".certificate.key", "required")
		}
		if t.Cert == "" {
			d.errorf(f.value, p+".certificate.crt", "required")
		}
	}
	t.ALPN = d.strList(fs["alpn"].value, p+".alpn")
	t.Ciphers = d.strList(fs["ciphers"].value, p+".ciphers")
	if f, ok := fs["skipValidation"]; ok {
		t.SkipValidation, _ = d.boolean(f.value, p+".skipValidation")
	}
	version := func(keys ...string) string {
		for _, k := range keys {
			if f, ok := fs[k]; ok {
				v, _ := d.str(f.value, p+"."+k)
				switch v {
				case "1.0", "1.1", "1.2", "1.3", "":
					return v
				}
				d.errorf(f.value, p+"."+k, "unknown TLS version %q (expected 1.0, 1.1, 1.2 or 1.3)", v)
			}
		}
		return ""
	}
	t.MinVersion = version("minversion", "minVersion")
	t.MaxVersion = version("maxversion", "maxVersion")
	return t
}

var labelTypes = []string{"literal", "environment", "requestHeader"}

func (d *decoder) tracing(n *yaml.Node) *Tracing {
	const p = "spec.tracing"
	t := &Tracing{Line: n.Line, SamplingClient: 100, SamplingRandom: 100, SamplingOverall: 100}
	fs := d.fields(n, p, "provider", "sampling", "labels")
	if f, ok := fs["provider"]; ok {
		pf := d.fields(f.value, p+".provider", "type", "properties")
		if v, ok := pf["type"]; ok {
			t.ProviderType, _ = d.str(v.value, p+".provider.type")
		}
		if t.ProviderType == "" {
			d.errorf(f.value, p+".provider.type", "required (opentelemetry or anypoint)")
		}
		t.ProviderProperties = d.flatStringMap(pf["properties"].value, p+".provider.properties")
	} else {
		d.errorf(n, p+".provider", "required")
	}
	sf := d.fields(fs["sampling"].value, p+".sampling", "client", "random", "overall")
	for name, dst := range map[string]*float64{"client": &t.SamplingClient, "random": &t.SamplingRandom, "overall": &t.SamplingOverall} {
		if f, ok := sf[name]; ok {
			if v, ok := d.number(f.value, p+".sampling."+name); ok {
				if v < 0 || v > 100 {
					d.errorf(f.value, p+".sampling."+name, "must be a percentage between 0 and 100, got %v", v)
				} else {
					*dst = v
				}
			}
		}
	}
	for i, ln := range d.seq(fs["labels"].value, p+".labels") {
		lp := fmt.Sprintf("%s.labels[%d]", p, i)
		lf := d.fields(ln, lp, "name", "type", "keyName", "defaultValue")
		var l TracingLabel
		get := func(k string) string {
			if f, ok := lf[k]; ok {
				s, _ := d.str(f.value, lp+"."+k)
				return s
			}
			return ""
		}
		l.Name, l.Type, l.KeyName, l.DefaultValue = get("name"), get("type"), get("keyName"), get("defaultValue")
		if l.Name == "" {
			d.errorf(ln, lp+".name", "required")
		}
		if !contains(labelTypes, l.Type) {
			d.errorf(ln, lp+".type", "must be one of %s, got %q", strings.Join(labelTypes, ", "), l.Type)
		} else if l.Type != "literal" && l.KeyName == "" {
			d.errorf(ln, lp+".keyName", "required for %s labels", l.Type)
		}
		t.Labels = append(t.Labels, l)
	}
	return t
}
