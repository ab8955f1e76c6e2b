package bundles

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const testBearerToken = "tok-3f9a1c77e2"

// bundleServer is a bundle server on 127.0.0.1 that serves one tarball
// with an ETag and answers 304 when If-None-Match matches it.
type bundleServer struct {
	mu          sync.Mutex
	tarball     []byte
	etag        string
	status      int
	requests    int
	notModified int
	ifNoneMatch []string
	authHeaders []string
}

func (s *bundleServer) set(t *testing.T, files map[string]string, etag string) {
	t.Helper()
	data := tarGz(t, files)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tarball, s.etag = data, etag
}

func (s *bundleServer) setStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

func (s *bundleServer) counts() (requests, notModified int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.notModified
}

func (s *bundleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.ifNoneMatch = append(s.ifNoneMatch, r.Header.Get("If-None-Match"))
	s.authHeaders = append(s.authHeaders, r.Header.Get("Authorization"))
	if r.URL.Path != "/bundles/authz.tar.gz" {
		http.NotFound(w, r)
		return
	}
	if s.status != 0 {
		w.WriteHeader(s.status)
		return
	}
	if r.Header.Get("If-None-Match") == s.etag {
		s.notModified++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", s.etag)
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(s.tarball)
}

func remoteConfig(url string) Config {
	return Config{
		URL:         url,
		Resource:    "/bundles/authz.tar.gz",
		Credentials: CredentialsConfig{BearerToken: testBearerToken},
	}
}

func TestRemoteBundleETag(t *testing.T) {
	srv := &bundleServer{}
	srv.set(t, policyFiles("remote-1"), `"etag-1"`)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	m, logs := newTestManager(t, remoteConfig(ts.URL))
	if got := m.Revision(); got != "remote-1" {
		t.Fatalf("revision = %q, want remote-1", got)
	}

	// An unchanged bundle: the server answers 304 and nothing changes.
	first := m.Active()
	if err := m.Reload(context.Background()); err != nil {
		t.Fatalf("Reload with 304: %v", err)
	}
	if _, notModified := srv.counts(); notModified != 1 {
		t.Errorf("304 answers = %d, want 1", notModified)
	}
	if m.Active() != first {
		t.Error("a 304 answer replaced the active revision")
	}

	// A new bundle with a new ETag is activated.
	srv.set(t, policyFiles("remote-2"), `"etag-2"`)
	if err := m.Reload(context.Background()); err != nil {
		t.Fatalf("Reload with a new bundle: %v", err)
	}
	if got := m.Revision(); got != "remote-2" {
		t.Errorf("revision = %q, want remote-2", got)
	}

	// A broken bundle is rejected and its ETag remembered.
	srv.set(t, map[string]string{"pdp/authz/policy.rego": "package pdp.authz\ndecision := {\n"}, `"etag-3"`)
	if err := m.Reload(context.Background()); err == nil {
		t.Error("Reload of a broken bundle returned nil")
	}
	if got := m.Revision(); got != "remote-2" {
		t.Errorf("revision after broken bundle = %q, want remote-2", got)
	}

	// The server fails: the last good revision keeps serving.
	srv.setStatus(http.StatusInternalServerError)
	if err := m.Reload(context.Background()); err == nil {
		t.Error("Reload against a failing server returned nil")
	}
	ts.Close()
	if err := m.Reload(context.Background()); err == nil {
		t.Error("Reload against a stopped server returned nil")
	}
	if got := m.Revision(); got != "remote-2" {
		t.Errorf("revision after server failure = %q, want remote-2", got)
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready after server failure: %v", err)
	}

	srv.mu.Lock()
	wantIfNoneMatch := []string{"", `"etag-1"`, `"etag-1"`, `"etag-2"`}
	if got := srv.ifNoneMatch[:4]; fmt.Sprint(got) != fmt.Sprint(wantIfNoneMatch) {
		t.Errorf("If-None-Match = %q, want %q", got, wantIfNoneMatch)
	}
	for i, h := range srv.authHeaders {
		if h != "Bearer "+testBearerToken {
			t.Errorf("request %d Authorization = %q", i, h)
		}
	}
	srv.mu.Unlock()

	log := logs.String()
	if !containsAll(log, "bundle download failed", "bundle rejected", "bundle_revision=remote-2") {
		t.Errorf("log lacks download failure or rejection:\n%s", log)
	}
	if strings.Contains(log, testBearerToken) {
		t.Error("log contains the bearer token")
	}
}

func TestRemoteBundlePolling(t *testing.T) {
	srv := &bundleServer{}
	srv.set(t, policyFiles("poll-1"), `"p1"`)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	cfg := remoteConfig(ts.URL)
	cfg.Polling = PollingConfig{MinDelay: time.Second, MaxDelay: time.Second}
	m, _ := newTestManager(t, cfg)

	srv.set(t, policyFiles("poll-2"), `"p2"`)
	waitFor(t, "polled revision poll-2", func() bool { return m.Revision() == "poll-2" })
	m.Stop()
	requests, _ := srv.counts()
	time.Sleep(1500 * time.Millisecond)
	if after, _ := srv.counts(); after != requests {
		t.Errorf("requests after Stop = %d, want %d", after, requests)
	}
}

func TestRemoteStartFailures(t *testing.T) {
	srv := &bundleServer{}
	srv.set(t, map[string]string{"p.rego": "package pdp.authz\nother := 1\n"}, `"x"`)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "missing entrypoint", cfg: remoteConfig(ts.URL), want: "missing entrypoint"},
		{name: "not found", cfg: Config{URL: ts.URL, Resource: "nothing.tar.gz"}, want: "Not Found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _, err := startTestManager(t, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start error = %v, want %q", err, tc.want)
			}
			if m.Ready() == nil {
				t.Error("Ready is nil after a failed start")
			}
		})
	}
}

func TestRemoteBundleTLS(t *testing.T) {
	srv := &bundleServer{}
	srv.set(t, policyFiles("tls-1"), `"t1"`)
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(caFile, cert, 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := remoteConfig(ts.URL)
	if _, _, err := startTestManager(t, cfg); err == nil {
		t.Error("Start trusted a server certificate outside the system roots")
	}
	cfg.TLS.CAFile = caFile
	m, _ := newTestManager(t, cfg)
	if got := m.Revision(); got != "tls-1" {
		t.Errorf("revision = %q, want tls-1", got)
	}
}
