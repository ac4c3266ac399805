package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/policy/internal/dw"
)

// messageLoggingConfig is message-logging-flex's configuration.
type messageLoggingConfig struct {
	LoggingConfiguration []logItem `json:"loggingConfiguration"`
}

type logItem struct {
	ItemName string      `json:"itemName"`
	ItemData logItemData `json:"itemData"`
}

type logItemData struct {
	Message       string `json:"message"`
	Conditional   string `json:"conditional"`
	Category      string `json:"category"`
	Level         string `json:"level"`
	FirstSection  bool   `json:"firstSection"`
	SecondSection bool   `json:"secondSection"`
}

type compiledLogItem struct {
	name     string
	category string
	level    slog.Level
	message  *dw.Expr
	cond     *dw.Expr
	before   bool
	after    bool
}

// messageLogging is message-logging-flex and its outbound twin,
// message-logging-outbound-flex (Flex 1.11), which takes the same
// configuration bound to a Service: on the built-in data plane a
// Service's policies run last in the chain, so its sections see the
// request as it goes to the upstream and the upstream's response.
type messageLogging struct{ name string }

func init() {
	Register(messageLogging{"message-logging-flex"})
	Register(messageLogging{"message-logging-outbound-flex"})
}

func (d messageLogging) Name() string { return d.name }

func parseMessageLogging(raw json.RawMessage) ([]compiledLogItem, error) {
	var c messageLoggingConfig
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	if len(c.LoggingConfiguration) == 0 {
		return nil, fieldErr("loggingConfiguration", "required: at least one item")
	}
	var out []compiledLogItem
	for i, it := range c.LoggingConfiguration {
		f := fmt.Sprintf("loggingConfiguration[%d]", i)
		if it.ItemName == "" {
			return nil, fieldErr(f+".itemName", "required")
		}
		d := it.ItemData
		if d.Message == "" {
			return nil, fieldErr(f+".itemData.message", "required")
		}
		ci := compiledLogItem{name: it.ItemName, category: d.Category, before: d.FirstSection, after: d.SecondSection}
		switch strings.ToUpper(d.Level) {
		case "DEBUG":
			ci.level = slog.LevelDebug
		case "INFO":
			ci.level = slog.LevelInfo
		case "WARN":
			ci.level = slog.LevelWarn
		case "ERROR":
			ci.level = slog.LevelError
		default:
			return nil, fieldErr(f+".itemData.level", "must be INFO, WARN, ERROR or DEBUG, got %q", d.Level)
		}
		if !ci.before && !ci.after {
			// Neither section chosen: log when the request arrives.
			ci.before = true
		}
		var err error
		if ci.message, err = compileExpr(f+".itemData.message", d.Message); err != nil {
			return nil, err
		}
		if d.Conditional != "" {
			if ci.cond, err = compileExpr(f+".itemData.conditional", d.Conditional); err != nil {
				return nil, err
			}
		}
		out = append(out, ci)
	}
	return out, nil
}

// Validate implements Definition.
func (messageLogging) Validate(raw json.RawMessage) error {
	_, err := parseMessageLogging(raw)
	return err
}

// Build implements Definition.
func (d messageLogging) Build(env Env, p *ir.Policy) (Middleware, error) {
	items, err := parseMessageLogging(p.Config)
	if err != nil {
		return nil, err
	}
	api := apiName(env)
	log := logger(env).With("policy", d.Name(), "binding", p.Binding, "api", api)
	name := d.Name()
	anyAfter := false
	for _, it := range items {
		anyAfter = anyAfter || it.after
	}
	emit := func(ctx context.Context, e *dw.Env, section string, after bool) {
		for _, it := range items {
			if after && !it.after || !after && !it.before {
				continue
			}
			if it.cond != nil && !it.cond.Bool(e) {
				continue
			}
			attrs := []any{"item", it.name, "section", section, "method", e.Request.Method, "path", e.Request.URL.Path}
			if it.category != "" {
				attrs = append(attrs, "category", it.category)
			}
			if id := e.Request.Header.Get("X-Request-Id"); id != "" {
				attrs = append(attrs, "request_id", id)
			}
			if after {
				attrs = append(attrs, "status", e.Status)
			}
			log.Log(ctx, it.level, it.message.String(e), attrs...)
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			Decide(r, name, Allowed)
			emit(r.Context(), &dw.Env{Request: r, API: api}, "before", false)
			if !anyAfter {
				next.ServeHTTP(w, r)
				return
			}
			hw := newHookWriter(w, func(status int, h http.Header) {
				emit(r.Context(), &dw.Env{Request: r, API: api, Status: status, RespHeader: h}, "after", true)
			})
			next.ServeHTTP(hw, r)
		})
	}, nil
}

// SecretFields implements Secrets: none: nothing in this config authenticates anyone.
func (messageLogging) SecretFields() []string { return []string{} }
