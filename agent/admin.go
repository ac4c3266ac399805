package agent

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/flexgw/flexgw/ir"
	"github.com/flexgw/flexgw/logpipe"
	"github.com/flexgw/flexgw/policy"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startAdmin listens on --admin and serves the admin API until the
// returned stop is called.
func (a *Agent) startAdmin() (stopFunc, error) {
	ln, err := net.Listen("tcp", a.opts.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", a.opts.AdminAddr, err)
	}
	// Every request's context derives from base: cancelling it at close
	// ends the log streams `flexgw top` holds open, which would otherwise
	// keep Shutdown waiting until its deadline.
	base, cancelBase := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler:           a.adminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin API stopped", "error", err)
		}
	}()
	a.adminAddr = ln.Addr().String()
	return func(ctx context.Context) error {
		cancelBase()
		err := srv.Shutdown(ctx)
		if err != nil {
			_ = srv.Close()
		}
		<-done
		return err
	}, nil
}

// adminHandler serves the admin API. Extra handlers (metrics, the `flexgw
// top` endpoints) are mounted by the agent at exact paths or subtrees;
// everything else is a JSON 404.
func (a *Agent) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "live"})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		a.state.mu.RLock()
		ready, draining := a.state.ready, a.state.draining
		a.state.mu.RUnlock()
		switch {
		case draining:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		case !ready:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		default:
			writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		}
	})
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Status())
	})
	mux.HandleFunc("GET /api/v1/config", func(w http.ResponseWriter, r *http.Request) {
		snap := a.state.snapshot()
		if snap == nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no snapshot loaded yet"})
			return
		}
		b, err := redactedSnapshotJSON(snap)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	for pattern, h := range a.adminExtra {
		mux.Handle(pattern, h)
	}
	mux.Handle("GET /{$}", a.adminIndex())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found", "path": r.URL.Path, "index": "/"})
	})
	var h http.Handler = mux
	if a.opts.AdminToken != "" {
		h = requireToken(a.opts.AdminToken, h)
	}
	// The Host check comes first: a rebound browser request is refused
	// before it learns anything, even whether a token is set.
	return hostGuard(a.opts.AdminAddr, a.opts.AdminHosts, h)
}

// requireToken guards the admin API with a bearer token. /live and /ready
// stay open: orchestrators probe them without credentials, and they reveal
// nothing but up/down.
func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/live" || r.URL.Path == "/ready" {
			next.ServeHTTP(w, r)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flexgw admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "admin API: missing or wrong bearer token (--admin-token)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Status returns the agent's current status. The components report
// after the state lock is released: they read the state themselves
// (a.state.snapshot), and a read lock taken twice deadlocks as soon as a
// reload waits for the write lock between the two (sync.RWMutex).
func (a *Agent) Status() Status {
	a.state.mu.RLock()
	st := Status{
		Version:         a.opts.Version,
		Commit:          a.opts.Commit,
		GatewayID:       a.opts.GatewayID,
		DataPlane:       a.dataPlaneName,
		DataPlaneReason: a.dataPlaneReason,
		StartedAt:       a.started,
		UptimeSeconds:   time.Since(a.started).Seconds(),
		Ready:           a.state.ready,
		Draining:        a.state.draining,
		LastReload:      a.state.last,
	}
	s := a.state.current
	a.state.mu.RUnlock()
	if s != nil {
		st.SnapshotVersion = s.Version
		st.SnapshotHash = s.Hash
		st.Summary = ir.Summary(s)
	}
	if len(a.statusExtra) > 0 {
		st.Components = map[string]any{}
		for name, f := range a.statusExtra {
			st.Components[name] = f()
		}
	}
	return st
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// secretKey matches configuration keys whose values look secret. It is the
// second line of defence, behind the schema: each policy and log output
// declares its secret fields (policy.Secrets, logpipe.SecretParams), and
// those are what TestSecretsNeverLeave holds to account.
var secretKey = regexp.MustCompile(`(?i)(password|passphrase|secret|token|api_?key|license_?key|private|credential|authorization|^key$)`)

// redactedSnapshotJSON renders the snapshot with every declared secret
// replaced: policy configs by their policy's SecretFields, log output
// parameters by their type's SecretParams, then anything whose key looks
// secret. PEM material and the Redis password never get this far: the ir
// types leave them out of JSON.
func redactedSnapshotJSON(s *ir.Snapshot) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	redactBySchema(v)
	redactValue(v)
	return json.MarshalIndent(v, "", "  ")
}

// redactBySchema finds the policies (objects with name, binding and
// config, as ir.Policy renders) and the log outputs (logging.outputs[])
// wherever they sit in the snapshot and redacts their declared secrets.
func redactBySchema(v any) {
	switch t := v.(type) {
	case map[string]any:
		name, isName := t["name"].(string)
		_, hasBinding := t["binding"]
		if cfg, hasConfig := t["config"]; isName && hasBinding && hasConfig {
			t["config"] = policy.RedactConfig(name, cfg)
		}
		if logging, ok := t["logging"].(map[string]any); ok {
			outs, _ := logging["outputs"].([]any)
			for _, o := range outs {
				out, _ := o.(map[string]any)
				typ, _ := out["type"].(string)
				params, _ := out["parameters"].(map[string]any)
				if params == nil {
					continue
				}
				strs := make(map[string]string, len(params))
				for k, p := range params {
					strs[k], _ = p.(string)
				}
				for k, p := range logpipe.RedactParams(typ, strs) {
					params[k] = p
				}
			}
		}
		for _, val := range t {
			redactBySchema(val)
		}
	case []any:
		for _, e := range t {
			redactBySchema(e)
		}
	}
}

func redactValue(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if secretKey.MatchString(k) {
				if _, isObj := val.(map[string]any); !isObj {
					t[k] = "[redacted]"
					continue
				}
			}
			redactValue(val)
		}
	case []any:
		for _, e := range t {
			redactValue(e)
		}
	}
}
