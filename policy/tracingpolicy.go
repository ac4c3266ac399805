package policy

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/flexgw/flexgw/ir"
)

// tracing-flex overrides Configuration spec.tracing for one API: its
// sampling percentages, extra span labels and the server span's name. It
// is a shaping policy: Shape copies the override onto the API's routes
// (Route.Tracing), which the built-in data plane's tracer and the Envoy
// translator (route-level tracing and decorator) both read. Like Flex, it
// acts only where global tracing is configured.

// tracingPolicyConfig is tracing-flex's configuration, as Flex's Tracing
// policy page lists it.
type tracingPolicyConfig struct {
	Sampling *struct {
		Client  *float64 `json:"client"`
		Random  *float64 `json:"random"`
		Overall *float64 `json:"overall"`
	} `json:"sampling"`
	SpanName string `json:"spanName"`
	Labels   []struct {
		Name         string `json:"name"`
		Type         string `json:"type"`
		KeyName      string `json:"keyName"`
		DefaultValue string `json:"defaultValue"`
	} `json:"labels"`
}

func init() {
	Register(shaping{"tracing-flex", func(raw json.RawMessage) error { _, err := parseTracingPolicy(raw); return err }})
}

// parseTracingPolicy checks a tracing-flex configuration and returns the
// route override it shapes. Missing percentages are Flex's default, 100.
func parseTracingPolicy(raw json.RawMessage) (*ir.TracingOverride, error) {
	var c tracingPolicyConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	out := &ir.TracingOverride{Sampling: ir.TracingSampling{Client: 100, Random: 100, Overall: 100}, SpanName: c.SpanName}
	if c.Sampling != nil {
		for _, f := range []struct {
			name string
			v    *float64
			out  *float64
		}{
			{"sampling.client", c.Sampling.Client, &out.Sampling.Client},
			{"sampling.random", c.Sampling.Random, &out.Sampling.Random},
			{"sampling.overall", c.Sampling.Overall, &out.Sampling.Overall},
		} {
			if f.v == nil {
				continue
			}
			if math.IsNaN(*f.v) || *f.v < 0 || *f.v > 100 {
				return nil, fieldErr(f.name, "must be a percentage from 0 to 100, got %v", *f.v)
			}
			*f.out = *f.v
		}
	}
	if len(c.SpanName) > 256 {
		return nil, fieldErr("spanName", "longer than 256 characters")
	}
	seen := map[string]bool{}
	for i, l := range c.Labels {
		field := fmt.Sprintf("labels[%d]", i)
		if l.Name == "" {
			return nil, fieldErr(field+".name", "required: the span attribute name")
		}
		if seen[l.Name] {
			return nil, fieldErr(field+".name", "%q is given twice", l.Name)
		}
		seen[l.Name] = true
		lb := ir.TracingLabel{Name: l.Name, Type: l.Type, Key: l.KeyName, DefaultValue: l.DefaultValue}
		switch l.Type {
		case "literal":
			lb.Value = l.DefaultValue // Flex writes a literal's value in defaultValue
		case "environment", "requestHeader":
			if l.KeyName == "" {
				return nil, fieldErr(field+".keyName", "required for type %s: the %s to read", l.Type, map[string]string{"environment": "environment variable", "requestHeader": "request header"}[l.Type])
			}
		case "":
			return nil, fieldErr(field+".type", "required: literal, environment or requestHeader")
		default:
			return nil, fieldErr(field+".type", "must be literal, environment or requestHeader, got %q", l.Type)
		}
		out.Labels = append(out.Labels, lb)
	}
	return out, nil
}
