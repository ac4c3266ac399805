package agent

import (
	"fmt"
	"net"
	"net/http"
	"strings"
)

// adminExposure checks the --admin rule before anything starts: an admin
// API reachable from other hosts serves configuration, status and metrics,
// so it needs a token, unless the operator says in so many words that the
// network protects it (--admin-insecure).
func adminExposure(o Options) (exposed bool, err error) {
	host, _, err := net.SplitHostPort(o.AdminAddr)
	if err != nil {
		return false, fmt.Errorf("--admin %q: want host:port: %w", o.AdminAddr, err)
	}
	if isLoopbackHost(host) {
		return false, nil
	}
	if o.AdminToken == "" && !o.AdminInsecure {
		return true, fmt.Errorf("--admin %s is reachable from other hosts and no token protects it: "+
			"set --admin-token (or $FLEXGW_ADMIN_TOKEN), or bind a loopback address such as 127.0.0.1:9180, "+
			"or pass --admin-insecure if a firewall or network policy already restricts who can reach it", o.AdminAddr)
	}
	return true, nil
}

// isLoopbackHost reports whether host (a name or IP, no port) can only be
// reached from this machine. An empty host is every interface.
func isLoopbackHost(host string) bool {
	if isLocalhostName(host) {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// isLocalhostName: "localhost" and names under it resolve to loopback
// (RFC 6761 §6.3; browsers hard-wire it), so no DNS answer can rebind them.
func isLocalhostName(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// hostGuard answers 421 Misdirected Request to requests whose Host is not
// one the admin API is known by. This defeats DNS rebinding: a web page on
// attacker.example whose name is re-pointed at 127.0.0.1 can make a
// browser send requests to the admin API, but with "Host: attacker.example".
//
// Accepted: loopback IPs and localhost names; the --admin host; names
// given with --admin-hosts; and, when --admin is a wildcard address
// (0.0.0.0, ::, empty), any IP literal, since rebinding needs a name and a
// scraper addressing the gateway by IP sends that IP.
func hostGuard(adminAddr string, extra []string, next http.Handler) http.Handler {
	bindHost, _, _ := net.SplitHostPort(adminAddr)
	bindHost = strings.ToLower(strings.Trim(bindHost, "[]"))
	wildcard := bindHost == ""
	if ip := net.ParseIP(bindHost); ip != nil && ip.IsUnspecified() {
		wildcard = true
	}
	allowed := map[string]bool{}
	if !wildcard {
		allowed[bindHost] = true
	}
	for _, h := range extra {
		allowed[strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
		ip := net.ParseIP(host)
		ok := host != "" && (isLocalhostName(host) || allowed[host] ||
			(ip != nil && (ip.IsLoopback() || wildcard)))
		if !ok {
			writeJSON(w, http.StatusMisdirectedRequest, map[string]string{
				"error": "admin API: Host is not a loopback address, the --admin address or one of --admin-hosts (DNS rebinding protection)",
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}
