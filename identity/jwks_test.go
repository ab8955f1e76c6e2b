package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authgate/pdp/pdp"
)

// jwksServer is a local HTTPS JWKS endpoint whose key set, status and delay
// the test changes while it runs.
type jwksServer struct {
	srv     *httptest.Server
	caFile  string
	fetches atomic.Int64

	mu           sync.Mutex
	keys         map[string]*ecdsa.PrivateKey
	status       int
	delay        time.Duration
	cacheControl string
	body         []byte
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{keys: map[string]*ecdsa.PrivateKey{}, status: http.StatusOK}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected in some tests
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	s.caFile = writeFile(t, t.TempDir(), "ca.pem", certPEM)
	return s
}

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.fetches.Add(1)
	s.mu.Lock()
	status, delay, cacheControl, body := s.status, s.delay, s.cacheControl, s.body
	var jwks []map[string]any
	for kid, k := range s.keys {
		jwks = append(jwks, ecJWK(kid, &k.PublicKey))
	}
	s.mu.Unlock()

	if r.URL.Path == "/redirect" {
		http.Redirect(w, r, strings.Replace(s.srv.URL, "127.0.0.1", "localhost", 1)+"/jwks", http.StatusFound)
		return
	}
	time.Sleep(delay)
	if status != http.StatusOK {
		http.Error(w, "unavailable", status)
		return
	}
	if cacheControl != "" {
		w.Header().Set("Cache-Control", cacheControl)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	if body != nil {
		_, _ = w.Write(body)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": jwks})
}

func (s *jwksServer) setKey(kid string, k *ecdsa.PrivateKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k == nil {
		delete(s.keys, kid)
		return
	}
	s.keys[kid] = k
}

func (s *jwksServer) setStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]any {
	pad := func(n *big.Int) string { return b64.EncodeToString(n.FillBytes(make([]byte, 32))) }
	return map[string]any{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
		"x": pad(pub.X), "y": pad(pub.Y)}
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func jwksIssuer(s *jwksServer, minRefresh time.Duration) IssuerConfig {
	return IssuerConfig{
		Name:                   "remote",
		Issuer:                 testIssuer,
		Audiences:              []string{testAudience},
		JWKSURL:                s.srv.URL + "/jwks",
		JWKSCAFile:             s.caFile,
		JWKSMinRefreshInterval: minRefresh,
		JWKSRefreshInterval:    time.Hour,
	}
}

// waitPast sleeps until d has passed since start, so that the next unknown
// kid may trigger a fetch.
func waitPast(start time.Time, d time.Duration) {
	time.Sleep(time.Until(start.Add(d + 20*time.Millisecond)))
}

func TestJWKSKeyRotation(t *testing.T) {
	const minRefresh = 150 * time.Millisecond
	s := newJWKSServer(t)
	oldKey, newKey := newECKey(t), newECKey(t)
	s.setKey("old", oldKey)
	a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{jwksIssuer(s, minRefresh)}},
		Options{Now: time.Now})
	ctx := context.Background()
	verify := func(kid string, key *ecdsa.PrivateKey) error {
		_, err := a.VerifyToken(ctx, signClaims(t, "ES256", kid, key, validClaims(time.Now())), nil)
		return err
	}
	oldToken := signClaims(t, "ES256", "old", oldKey, validClaims(time.Now()))

	// Step 1: the initial key set verifies.
	if err := a.Ready(); err != nil {
		t.Fatalf("Ready after Start: %v", err)
	}
	if _, err := a.VerifyToken(ctx, oldToken, nil); err != nil {
		t.Fatalf("old key: %v", err)
	}

	// Step 2: a new key is published; its first token triggers a refresh.
	s.setKey("new", newKey)
	waitPast(time.Now(), minRefresh)
	if err := verify("new", newKey); err != nil {
		t.Fatalf("new key after it was published: %v", err)
	}
	if err := verify("old", oldKey); err != nil {
		t.Fatalf("old key while both are published: %v", err)
	}

	// Step 3: the old key is removed; after the next refresh even its cached
	// token is rejected.
	s.setKey("old", nil)
	refreshed := time.Now()
	waitPast(refreshed, minRefresh)
	if err := verify("unknown", newKey); reasonOf(err) != pdp.ReasonTokenInvalid {
		t.Fatalf("unknown kid: reason = %q, want token.invalid", reasonOf(err))
	}
	if _, err := a.VerifyToken(ctx, oldToken, nil); reasonOf(err) != pdp.ReasonTokenInvalid {
		t.Fatalf("cached token of a removed key: reason = %q, want token.invalid (%v)", reasonOf(err), err)
	}
	if err := verify("new", newKey); err != nil {
		t.Fatalf("new key after rotation: %v", err)
	}

	// Step 4: the endpoint fails; the last good keys still verify and Ready
	// reports the failure.
	s.setStatus(http.StatusServiceUnavailable)
	waitPast(time.Now(), minRefresh)
	_ = verify("unknown-2", newKey)
	if err := verify("new", newKey); err != nil {
		t.Fatalf("new key while the endpoint is down: %v", err)
	}
	if err := a.Ready(); !errors.Is(err, ErrKeysStale) {
		t.Fatalf("Ready while the endpoint is down = %v, want ErrKeysStale", err)
	}
}

func TestJWKSUnknownKidFlood(t *testing.T) {
	const minRefresh = time.Second
	const fetchDelay = 1500 * time.Millisecond
	s := newJWKSServer(t)
	key := newECKey(t)
	s.setKey("k1", key)
	a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{jwksIssuer(s, minRefresh)}},
		Options{Now: time.Now})
	started := time.Now()
	if got := s.fetches.Load(); got != 1 {
		t.Fatalf("fetches after Start = %d, want 1", got)
	}

	// The endpoint is slow, so every request gives up at its own deadline
	// while the single refresh is still running.
	s.mu.Lock()
	s.delay = fetchDelay
	s.mu.Unlock()
	waitPast(started, minRefresh)

	const flood = 1000
	const deadline = 50 * time.Millisecond
	tokens := make([]string, flood)
	for i := range tokens {
		tokens[i] = signClaims(t, "ES256", fmt.Sprintf("unknown-%d", i), key, validClaims(time.Now()))
	}
	var wg sync.WaitGroup
	var slowest atomic.Int64
	var accepted atomic.Int64
	for _, token := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			begin := time.Now()
			_, err := a.VerifyToken(ctx, token, nil)
			if err == nil {
				accepted.Add(1)
			}
			elapsed := int64(time.Since(begin))
			for {
				cur := slowest.Load()
				if elapsed <= cur || slowest.CompareAndSwap(cur, elapsed) {
					break
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond) // let the one fetch reach the server

	if got := s.fetches.Load() - 1; got != 1 {
		t.Errorf("fetches caused by %d unknown kids = %d, want 1", flood, got)
	}
	if accepted.Load() != 0 {
		t.Errorf("%d tokens with unknown kids were accepted", accepted.Load())
	}
	// Starting 1,000 goroutines under -race on a small machine delays
	// timers by a few hundred milliseconds, so the bound is well below the
	// fetch delay rather than at the deadline itself.
	if max := time.Duration(slowest.Load()); max >= fetchDelay-500*time.Millisecond {
		t.Errorf("slowest request took %s: requests waited for the %s fetch", max, fetchDelay)
	}
	t.Logf("slowest of %d requests: %s", flood, time.Duration(slowest.Load()))
}

func TestJWKSFetchLimits(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		body   []byte
		status int
		want   string
	}{
		{"redirect to another host", "/redirect", nil, http.StatusOK, "is not followed"},
		{"response too large", "/jwks", []byte(`{"keys":[],"x":"` + strings.Repeat("a", MaxJWKSBytes) + `"}`),
			http.StatusOK, "larger than"},
		{"duplicate keys member", "/jwks", []byte(`{"keys":[],"keys":[]}`), http.StatusOK, "duplicate"},
		{"no usable key", "/jwks", []byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`), http.StatusOK, "no usable"},
		{"server error", "/jwks", nil, http.StatusInternalServerError, "500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newJWKSServer(t)
			s.setKey("k1", newECKey(t))
			s.body = tt.body
			s.setStatus(tt.status)
			cfg := jwksIssuer(s, time.Second)
			cfg.JWKSURL = s.srv.URL + tt.path
			a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{cfg}}, Options{})
			err := a.Ready()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Ready = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestJWKSUntrustedCA(t *testing.T) {
	s := newJWKSServer(t)
	s.setKey("k1", newECKey(t))
	cfg := jwksIssuer(s, time.Second)
	cfg.JWKSCAFile = writeFile(t, t.TempDir(), "other-ca.pem", newTestCA(t).pem)
	a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{cfg}}, Options{})
	if err := a.Ready(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Ready = %v, want a certificate error", err)
	}
}

func TestRefreshDelay(t *testing.T) {
	s := &jwksSource{cfg: &IssuerConfig{
		JWKSMinRefreshInterval: 30 * time.Second,
		JWKSRefreshInterval:    5 * time.Minute,
		JWKSMaxRefreshInterval: time.Hour,
	}}
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 5 * time.Minute},
		{"public, max-age=600", 10 * time.Minute},
		{"max-age=1", 30 * time.Second},
		{"max-age=86400", time.Hour},
		{"max-age=600, no-cache", 5 * time.Minute},
		{"max-age=abc", 5 * time.Minute},
	}
	for _, tt := range tests {
		if got := s.refreshDelay(cacheMaxAge(tt.header)); got != tt.want {
			t.Errorf("Cache-Control %q: delay = %s, want %s", tt.header, got, tt.want)
		}
	}
}
