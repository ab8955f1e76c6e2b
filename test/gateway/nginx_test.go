// Package gateway holds end-to-end tests of the PDP's front doors behind
// real gateway processes started by the tests.
package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authgate/pdp/api"
	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/test/gateway/regosource"
)

const testToken = "good-token"

// tokenAuthenticator accepts testToken as alice of tenant t-1.
type tokenAuthenticator struct{}

func (tokenAuthenticator) VerifyToken(_ context.Context, token string, _ []string) (*pdp.Identity, error) {
	if token != testToken {
		return nil, pdp.Denyf(pdp.ReasonTokenInvalid, "unknown token")
	}
	return &pdp.Identity{Verified: true, Method: "jwt", Issuer: "https://idp.example.test",
		Subject: "alice", Tenant: "t-1"}, nil
}

func (tokenAuthenticator) VerifyPeer(context.Context, *pdp.Peer) (*pdp.Identity, error) {
	return nil, pdp.Denyf(pdp.ReasonIdentityMissing, "no peer")
}

const nginxPolicy = `package gw

default result := {"allowed": false}

result := {"allowed": true} if {
	input.identity.verified
	not "admin" in input.parsed_path
	not "broken" in input.parsed_path
}

result := {"allowed": true} if input.parsed_path[0] == "public"

result := 7 if "broken" in input.parsed_path
`

// upstream records the requests that reach it.
type upstream struct {
	mu       sync.Mutex
	requests []*http.Request
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.requests = append(u.requests, r.Clone(context.Background()))
	u.mu.Unlock()
	_, _ = w.Write([]byte("upstream"))
}

func (u *upstream) last() (*http.Request, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.requests) == 0 {
		return nil, 0
	}
	return u.requests[len(u.requests)-1], len(u.requests)
}

func TestNGINXAuthRequest(t *testing.T) {
	nginx := findNGINX(t)

	policy, err := regosource.Compile(context.Background(), map[string]string{"policy.rego": nginxPolicy}, nil, "gw/result")
	if err != nil {
		t.Fatal(err)
	}
	engine, aud, err := regosource.NewEngine(policy, pdp.Options{
		Authenticator: tokenAuthenticator{},
		Routes:        []pdp.Route{{Name: "all", Token: pdp.TokenRequirement{Issuers: []string{"idp"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	pdpServer := httptest.NewServer(api.NewServer(api.Options{Engine: engine}).Handler())
	t.Cleanup(pdpServer.Close)
	up := &upstream{}
	upServer := httptest.NewServer(up)
	t.Cleanup(upServer.Close)

	base := startNGINX(t, nginx, hostPort(t, pdpServer.URL), hostPort(t, upServer.URL))

	t.Run("allowed with identity", func(t *testing.T) {
		resp := get(t, base+"/orders/1", map[string]string{
			"Authorization": "Bearer " + testToken, "X-Pdp-Subject": "mallory", "X-Pdp-Tenant": "evil",
		})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200", resp.StatusCode)
		}
		r, _ := up.last()
		if got := r.Header.Values("X-Pdp-Subject"); len(got) != 1 || got[0] != "alice" {
			t.Errorf("upstream X-Pdp-Subject = %q, want [alice]", got)
		}
		if got := r.Header.Values("X-Pdp-Tenant"); len(got) != 1 || got[0] != "t-1" {
			t.Errorf("upstream X-Pdp-Tenant = %q, want [t-1]", got)
		}
		id := r.Header.Get("X-Pdp-Decision-Id")
		if _, ok := aud.Find(id); !ok {
			t.Errorf("upstream decision id %q has no audit record", id)
		}
	})

	t.Run("anonymous spoof removed", func(t *testing.T) {
		resp := get(t, base+"/public/page", map[string]string{"X-Pdp-Subject": "mallory"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200", resp.StatusCode)
		}
		r, _ := up.last()
		if got := r.Header.Values("X-Pdp-Subject"); len(got) != 0 {
			t.Errorf("upstream X-Pdp-Subject = %q, want none", got)
		}
	})

	denied := []struct {
		name, path string
		headers    map[string]string
		status     int
		reason     string
	}{
		{"no token", "/orders/1", nil, 403, "policy.denied"},
		{"bad token", "/orders/1", map[string]string{"Authorization": "Bearer forged"}, 401, "token.invalid"},
		{"admin", "/admin/x", map[string]string{"Authorization": "Bearer " + testToken}, 403, "policy.denied"},
		{"admin double slash", "//admin/x", map[string]string{"Authorization": "Bearer " + testToken}, 403, "policy.denied"},
		{"admin encoded slash", "/%2Fadmin/x", map[string]string{"Authorization": "Bearer " + testToken}, 403, "policy.denied"},
		{"admin dot segments", "/public/../admin/x", map[string]string{"Authorization": "Bearer " + testToken}, 403, "policy.denied"},
		{"policy error is 403", "/broken", map[string]string{"Authorization": "Bearer " + testToken}, 403, "policy.error"},
	}
	for _, tc := range denied {
		t.Run(tc.name, func(t *testing.T) {
			_, before := up.last()
			resp := getRaw(t, base, tc.path, tc.headers)
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if _, after := up.last(); after != before {
				t.Errorf("denied request reached the upstream")
			}
			if !auditHas(aud, tc.reason) {
				t.Errorf("no audit record with reason %s", tc.reason)
			}
		})
	}
}

func auditHas(aud *regosource.Auditor, reason string) bool {
	for _, ev := range aud.Events() {
		if string(ev.Reason) == reason {
			return true
		}
	}
	return false
}

// findNGINX returns the nginx binary or fails with the install command.
func findNGINX(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Fatal("nginx not found in PATH or /usr/sbin; install it with: apt-get install -y nginx-light")
	return ""
}

// startNGINX writes a configuration that guards upstream with
// auth_request to the PDP and runs nginx in the foreground on a free
// loopback port. It returns the base URL.
func startNGINX(t *testing.T, binary, pdpAddr, upstreamAddr string) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	user := ""
	if os.Geteuid() == 0 {
		// As root, nginx's workers would run as nobody and could not use
		// the test's temporary folder.
		user = "user root;"
	}
	conf := fmt.Sprintf(nginxConf, user, dir, port, pdpAddr, upstreamAddr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(binary, "-p", dir, "-c", confPath, "-g", "daemon off;")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			_ = conn.Close()
			return "http://" + addr
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s within 10s: %s", addr, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nginxConf is filled with: user line, prefix dir, listen port, PDP
// address, upstream address.
const nginxConf = `%[1]s
worker_processes 1;
error_log %[2]s/logs/error.log warn;
pid %[2]s/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    server {
        listen 127.0.0.1:%[3]d;
        merge_slashes off;
        location = /_pdp_auth {
            internal;
            proxy_pass http://%[4]s/nginx/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
        location / {
            auth_request /_pdp_auth;
            auth_request_set $pdp_subject $upstream_http_x_pdp_subject;
            auth_request_set $pdp_tenant $upstream_http_x_pdp_tenant;
            auth_request_set $pdp_issuer $upstream_http_x_pdp_issuer;
            auth_request_set $pdp_spiffe_id $upstream_http_x_pdp_spiffe_id;
            auth_request_set $pdp_decision_id $upstream_http_x_pdp_decision_id;
            proxy_set_header X-Pdp-Subject $pdp_subject;
            proxy_set_header X-Pdp-Tenant $pdp_tenant;
            proxy_set_header X-Pdp-Issuer $pdp_issuer;
            proxy_set_header X-Pdp-Spiffe-Id $pdp_spiffe_id;
            proxy_set_header X-Pdp-Decision-Id $pdp_decision_id;
            proxy_pass http://%[5]s;
        }
    }
}
`

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	return strings.TrimPrefix(rawURL, "http://")
}

func get(t *testing.T, url string, headers map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// getRaw writes the request line itself, so encodings, dot segments and
// duplicate slashes reach nginx unchanged (Go's client would read a target
// starting with "//" as an authority).
func getRaw(t *testing.T, base, target string, headers map[string]string) *http.Response {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))

	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", target, addr)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}
