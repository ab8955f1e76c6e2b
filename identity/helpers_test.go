package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authgate/pdp/pdp"
)

const (
	testIssuer   = "https://idp.example.test"
	testAudience = "pdp"
	// testSecret is 32 bytes, the minimum for HS256.
	testSecret = "0123456789abcdef0123456789abcdef"
)

// testNow is the fixed clock of most tests.
var testNow = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// signingKeys are generated once per test binary; RSA generation is slow.
type signingKeys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keys     signingKeys
)

func testSigningKeys(t testing.TB) signingKeys {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if keys.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keys.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if _, keys.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return keys
}

// signRaw signs the exact header and claims JSON texts, so tests can build
// tokens that no well-behaved library would produce.
func signRaw(t testing.TB, alg string, key any, headerJSON, claimsJSON string) string {
	t.Helper()
	input := b64.EncodeToString([]byte(headerJSON)) + "." + b64.EncodeToString([]byte(claimsJSON))
	method := jwt.GetSigningMethod(alg)
	if method == nil {
		t.Fatalf("unknown signing method %s", alg)
	}
	sig, err := method.Sign(input, key)
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// signClaims signs claims with a header of alg and kid.
func signClaims(t testing.TB, alg, kid string, key any, claims map[string]any) string {
	t.Helper()
	header := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		header["kid"] = kid
	}
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return signRaw(t, alg, key, string(h), string(c))
}

// validClaims returns claims that the test issuer accepts at testNow.
func validClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss":   testIssuer,
		"sub":   "user-1",
		"aud":   testAudience,
		"exp":   now.Add(time.Hour).Unix(),
		"iat":   now.Add(-time.Minute).Unix(),
		"jti":   "token-1",
		"scope": "read write",
		"tid":   "t-42",
	}
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func publicPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// staticIssuer returns an issuer with an RSA key "rsa1", an EC key "ec1",
// an Ed25519 key "ed1" and an HMAC secret "hs1", all read from files.
func staticIssuer(t testing.TB) IssuerConfig {
	t.Helper()
	k := testSigningKeys(t)
	dir := t.TempDir()
	return IssuerConfig{
		Name:        "test",
		Issuer:      testIssuer,
		Audiences:   []string{testAudience},
		TenantClaim: "tid",
		Keys: []KeyConfig{
			{ID: "rsa1", File: writeFile(t, dir, "rsa.pem", publicPEM(t, &k.rsa.PublicKey))},
			{ID: "ec1", File: writeFile(t, dir, "ec.pem", publicPEM(t, &k.ec.PublicKey))},
			{ID: "ed1", File: writeFile(t, dir, "ed.pem", publicPEM(t, k.ed.Public()))},
			{ID: "hs1", SecretFile: writeFile(t, dir, "hs1.secret", []byte(testSecret+"\n"))},
		},
	}
}

// newTestAuthenticator builds and starts an Authenticator whose clock is
// testNow.
func newTestAuthenticator(t testing.TB, cfg Config, opts Options) *Authenticator {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(a.Stop)
	return a
}

// reasonOf returns the reason code of err, "" for nil.
func reasonOf(err error) pdp.Reason {
	if err == nil {
		return ""
	}
	return pdp.ReasonOf(err, "untyped error")
}

func b64std(data []byte) string { return base64.StdEncoding.EncodeToString(data) }
