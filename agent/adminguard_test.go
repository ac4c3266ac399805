package agent

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/flexgw/flexgw/internal/testutil"
)

func TestAdminExposureRule(t *testing.T) {
	for _, tc := range []struct {
		addr, token string
		insecure    bool
		wantErr     bool
	}{
		{"127.0.0.1:9180", "", false, false},
		{"127.0.0.2:9180", "", false, false},
		{"localhost:9180", "", false, false},
		{"[::1]:9180", "", false, false},
		{"0.0.0.0:9180", "", false, true},
		{":9180", "", false, true},
		{"[::]:9180", "", false, true},
		{"10.1.2.3:9180", "", false, true},
		{"gw.example.com:9180", "", false, true},
		{"0.0.0.0:9180", "t0ken", false, false},
		{"0.0.0.0:9180", "", true, false},
		{"not-an-address", "", false, true},
	} {
		_, err := adminExposure(Options{AdminAddr: tc.addr, AdminToken: tc.token, AdminInsecure: tc.insecure})
		if (err != nil) != tc.wantErr {
			t.Errorf("--admin %s token=%q insecure=%v: err=%v, want error %v", tc.addr, tc.token, tc.insecure, err, tc.wantErr)
		}
		if err != nil && tc.wantErr && tc.addr != "not-an-address" && !strings.Contains(err.Error(), "--admin-token") {
			t.Errorf("error does not say how to fix it: %v", err)
		}
	}
	// newAgent enforces it, so no caller can start an exposed admin API.
	if _, err := newAgent(Options{AdminAddr: "0.0.0.0:9180"}); err == nil {
		t.Fatal("newAgent accepted a non-loopback --admin without a token")
	}
}

// hostStatus sends GET path with the given Host header over a real socket.
func hostStatus(t *testing.T, addr, host, token string) int {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+"/api/v1/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminHostGuard attacks the admin API the way a DNS-rebinding page
// does: the connection reaches the loopback port, but the Host header
// carries the attacker's name.
func TestAdminHostGuard(t *testing.T) {
	var logs testutil.SyncBuffer
	o := testOptions(t, t.TempDir(), &logs)
	o.AdminHosts = []string{"gw-1.example.com"}
	ta := startAgent(t, o, &logs)
	_, port, _ := net.SplitHostPort(ta.admin)
	for host, want := range map[string]int{
		"attacker.example":              http.StatusMisdirectedRequest,
		"attacker.example:" + port:      http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io:" + port:      http.StatusMisdirectedRequest,
		"localhost.attacker.example":    http.StatusMisdirectedRequest,
		"10.1.2.3:" + port:              http.StatusMisdirectedRequest, // an IP, but not this bind
		"127.0.0.1:" + port:             http.StatusOK,
		"127.0.0.1":                     http.StatusOK,
		"127.8.9.10:" + port:            http.StatusOK,
		"[::1]:" + port:                 http.StatusOK,
		"localhost:" + port:             http.StatusOK,
		"LOCALHOST.:" + port:            http.StatusOK,
		"admin.localhost:" + port:       http.StatusOK,
		"gw-1.example.com:" + port:      http.StatusOK,
		"GW-1.example.com":              http.StatusOK,
		"gw-1.example.com.evil.example": http.StatusMisdirectedRequest,
	} {
		if got := hostStatus(t, ta.admin, host, ""); got != want {
			t.Errorf("Host %q: %d, want %d", host, got, want)
		}
	}

	// HTTP/1.0 without any Host: browsers always send one, so a request
	// without is not from a page, but it is not known to be ours either.
	c, err := net.Dial("tcp", ta.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /api/v1/config HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("no Host: %d, want 421", resp.StatusCode)
	}
}

// TestAdminHostGuardWildcardBind: bound to every interface (token set), a
// scraper addressing the gateway by any IP gets through to the token
// check; a name that is not configured is still refused first.
func TestAdminHostGuardWildcardBind(t *testing.T) {
	var logs testutil.SyncBuffer
	o := testOptions(t, t.TempDir(), &logs)
	o.AdminAddr = "0.0.0.0:0"
	o.AdminToken = "s3cret-token"
	ta := startAgent(t, o, &logs)
	_, port, _ := net.SplitHostPort(ta.admin)
	addr := "127.0.0.1:" + port
	for _, tc := range []struct {
		host, token string
		want        int
	}{
		{"10.1.2.3:" + port, "s3cret-token", http.StatusOK},
		{"10.1.2.3:" + port, "", http.StatusUnauthorized},
		{"[fd00::1]:" + port, "s3cret-token", http.StatusOK},
		{"attacker.example:" + port, "s3cret-token", http.StatusMisdirectedRequest},
		{"attacker.example:" + port, "", http.StatusMisdirectedRequest},
	} {
		if got := hostStatus(t, addr, tc.host, tc.token); got != tc.want {
			t.Errorf("Host %q token %q: %d, want %d", tc.host, tc.token, got, tc.want)
		}
	}
}
