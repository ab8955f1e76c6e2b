package deploy

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nginxBinary returns the nginx executable, skipping the test when none
// is installed (test/install-deps.sh installs it for the test command).
func nginxBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	t.Skip("nginx is not installed")
	return ""
}

// writeNginxConfig copies nginx.conf into a new prefix directory with the
// PDP, application and listen addresses replaced, and returns the prefix
// and the config path.
func writeNginxConfig(t *testing.T, pdpAddr, appAddr, listenAddr string) (string, string) {
	t.Helper()
	raw, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatalf("read nginx.conf: %v", err)
	}
	conf := string(raw)
	for old, repl := range map[string]string{
		"server 127.0.0.1:8181;": "server " + pdpAddr + ";",
		"server 127.0.0.1:8000;": "server " + appAddr + ";",
		"listen 127.0.0.1:8080;": "listen " + listenAddr + ";",
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("nginx.conf lacks %q", old)
		}
		conf = strings.ReplaceAll(conf, old, repl)
	}
	prefix := t.TempDir()
	if err := os.Mkdir(filepath.Join(prefix, "logs"), 0o755); err != nil {
		t.Fatalf("create logs dir: %v", err)
	}
	path := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatalf("write nginx.conf: %v", err)
	}
	return prefix, path
}

func TestNginxConfigSyntax(t *testing.T) {
	bin := nginxBinary(t)
	prefix, path := writeNginxConfig(t, "127.0.0.1:8181", "127.0.0.1:8000", "127.0.0.1:8080")
	out, err := exec.Command(bin, "-t", "-p", prefix, "-c", path).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestNginxConfigIdentityHeaders(t *testing.T) {
	bin := nginxBinary(t)

	// The PDP stand-in allows a request with the token "good" as subject
	// alice, and denies every other request with token.missing.
	pdp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/nginx/auth" || r.Header.Get("X-Original-URI") != "/items?x=1" ||
			r.Header.Get("X-Original-Method") != http.MethodGet {
			http.Error(w, "unexpected auth subrequest", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Pdp-Decision-Id", "d-1")
		if r.Header.Get("Authorization") != "Bearer good" {
			w.Header().Set("X-Pdp-Reason", "token.missing")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Pdp-Subject", "alice")
		w.Header().Set("X-Pdp-Tenant", "")
	}))
	defer pdp.Close()
	// The application stand-in returns the x-pdp-* headers it received.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen := map[string]string{}
		for name := range r.Header {
			if strings.HasPrefix(strings.ToLower(name), "x-pdp-") {
				seen[strings.ToLower(name)] = r.Header.Get(name)
			}
		}
		_ = json.NewEncoder(w).Encode(seen)
	}))
	defer app.Close()

	listen := freeLoopbackAddr(t)
	prefix, path := writeNginxConfig(t, pdp.Listener.Addr().String(), app.Listener.Addr().String(),
		listen)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-p", prefix, "-c", path, "-g", "daemon off;")
	// SIGTERM makes the nginx master stop its workers too; the default
	// SIGKILL would leave the workers running.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	waitForListener(t, listen)

	get := func(token string) (*http.Response, map[string]string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/items?x=1", nil)
		req.Header.Set("X-Pdp-Subject", "mallory")
		req.Header.Set("X-Pdp-Tenant", "evil")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET through nginx: %v", err)
		}
		defer resp.Body.Close()
		seen := map[string]string{}
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
				t.Fatalf("decode application response: %v", err)
			}
		}
		return resp, seen
	}

	resp, seen := get("good")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("allowed request: status %d, want 200", resp.StatusCode)
	}
	if seen["x-pdp-subject"] != "alice" {
		t.Errorf("upstream x-pdp-subject = %q, want the PDP's alice", seen["x-pdp-subject"])
	}
	if v, ok := seen["x-pdp-tenant"]; ok {
		t.Errorf("upstream x-pdp-tenant = %q, want the client's value dropped", v)
	}
	if seen["x-pdp-decision-id"] != "d-1" {
		t.Errorf("upstream x-pdp-decision-id = %q, want d-1", seen["x-pdp-decision-id"])
	}

	resp, _ = get("")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("request without token: status %d, want 401", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Pdp-Reason"); got != "token.missing" {
		t.Errorf("denial X-Pdp-Reason = %q, want token.missing", got)
	}
}

// waitForListener polls until addr accepts a connection, for up to 10s.
func waitForListener(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nginx did not listen on %s within 10s", addr)
}
