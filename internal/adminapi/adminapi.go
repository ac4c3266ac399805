// Package adminapi is the client side of the agent's admin API for the
// CLI commands that read it (status, config dump, top -o json). It checks
// that the other end is a flexgw agent before anything is shown, so a
// command pointed at another server fails instead of printing nothing.
package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultURL is the agent's default --admin address.
const DefaultURL = "http://127.0.0.1:9180"

// Client reads one agent's admin API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for adminURL ("host:port" or a URL) with the
// bearer token (may be empty).
func New(adminURL, token string) (*Client, error) {
	if adminURL == "" {
		adminURL = DefaultURL
	}
	if !strings.Contains(adminURL, "://") {
		adminURL = "http://" + adminURL
	}
	u, err := url.Parse(adminURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--admin %q: want a URL such as %s", adminURL, DefaultURL)
	}
	// A wildcard listen address (run --admin 0.0.0.0:9180, as the
	// container sets it) is reached on loopback, which the agent's Host
	// check accepts.
	switch u.Hostname() {
	case "0.0.0.0", "":
		u.Host = net.JoinHostPort("127.0.0.1", u.Port())
	case "::":
		u.Host = net.JoinHostPort("::1", u.Port())
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), token: token, http: &http.Client{Timeout: 15 * time.Second}}, nil
}

// URL is the admin API's base URL.
func (c *Client) URL() string { return c.base }

// maxBody bounds what is read from the admin API: a config dump of a
// thousand APIs is a few MB.
const maxBody = 64 << 20

// Get returns the body of a 200 answer to GET path, which must be JSON.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the message already
		}
		return nil, fmt.Errorf("gateway admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("GET %s%s: %w", c.base, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return nil, fmt.Errorf("GET %s%s: %s: %s", c.base, path, resp.Status, msg)
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("GET %s%s: the answer is not JSON: %s is not a flexgw admin API", c.base, path, c.base)
	}
	return body, nil
}

// Status is the part of /api/v1/status that identifies a flexgw agent.
type Status struct {
	Version   string    `json:"version"`
	GatewayID string    `json:"gatewayId"`
	StartedAt time.Time `json:"startedAt"`
}

// Identify fetches /api/v1/status and checks it is a flexgw agent's; it
// returns the raw document.
func (c *Client) Identify(ctx context.Context) ([]byte, error) {
	body, err := c.Get(ctx, "/api/v1/status")
	if err != nil {
		return nil, err
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil || st.Version == "" || st.StartedAt.IsZero() {
		return nil, fmt.Errorf("%s is not a flexgw admin API: /api/v1/status has no version and start time", c.base)
	}
	return body, nil
}
