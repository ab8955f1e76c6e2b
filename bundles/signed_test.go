package bundles

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// testKey is a signing key pair in PEM, or a shared secret for HS*.
type testKey struct {
	alg     string
	private string
	public  string
}

func newECKey(t *testing.T) testKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pemPair(t, "ES256", key, &key.PublicKey)
}

func newRSAKey(t *testing.T) testKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return pemPair(t, "PS256", key, &key.PublicKey)
}

func pemPair(t *testing.T, alg string, private, public any) testKey {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(private)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(public)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{
		alg:     alg,
		private: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		public:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
	}
}

// signedTarball builds a bundle with revision rev, signs it with key under
// key id kid and returns the .tar.gz. tamper changes the policy after
// signing.
func signedTarball(t *testing.T, key testKey, kid, rev string, tamper bool) []byte {
	t.Helper()
	roots := []string{"pdp"}
	policy := []byte(policyFiles(rev)["pdp/authz/policy.rego"])
	b := bundle.Bundle{
		Manifest: bundle.Manifest{Revision: rev, Roots: &roots},
		Data:     map[string]any{"pdp": map[string]any{"limits": map[string]any{"max": 5}}},
		Modules:  []bundle.ModuleFile{{URL: "/pdp/authz/policy.rego", Path: "/pdp/authz/policy.rego", Raw: policy}},
	}
	if err := b.GenerateSignature(bundle.NewSigningConfig(key.private, key.alg, ""), kid, false); err != nil {
		t.Fatalf("sign bundle: %v", err)
	}
	if tamper {
		b.Modules[0].Raw = bytes.Replace(policy, []byte(`input.user == "alice"`), []byte(`true`), 1)
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatalf("write bundle: %v", err)
	}
	return buf.Bytes()
}

func TestSignedBundles(t *testing.T) {
	ec := newECKey(t)
	rsaKey := newRSAKey(t)
	hmac := testKey{alg: "HS256", private: "test-secret", public: "test-secret"}
	other := newECKey(t)

	tests := []struct {
		name    string
		tarball []byte
		signing SigningConfig
		wantErr string
	}{
		{
			name:    "ES256 valid",
			tarball: signedTarball(t, ec, "k1", "s1", false),
			signing: SigningConfig{Required: true, Keys: []KeyConfig{{ID: "k1", Algorithm: "ES256", Key: ec.public}}},
		},
		{
			name:    "PS256 valid",
			tarball: signedTarball(t, rsaKey, "k1", "s1", false),
			signing: SigningConfig{Required: true, Keys: []KeyConfig{{ID: "k1", Algorithm: "PS256", Key: rsaKey.public}}},
		},
		{
			name:    "HS256 valid",
			tarball: signedTarball(t, hmac, "k1", "s1", false),
			signing: SigningConfig{Required: true, Keys: []KeyConfig{{ID: "k1", Algorithm: "HS256", Key: hmac.public}}},
		},
		{
			name:    "configured key id overrides kid",
			tarball: signedTarball(t, ec, "rotated", "s1", false),
			signing: SigningConfig{Required: true, KeyID: "k1", Keys: []KeyConfig{{ID: "k1", Algorithm: "ES256", Key: ec.public}}},
		},
		{
			name:    "tampered policy",
			tarball: signedTarball(t, ec, "k1", "s1", true),
			signing: SigningConfig{Required: true, Keys: []KeyConfig{{ID: "k1", Algorithm: "ES256", Key: ec.public}}},
			wantErr: "pdp/authz/policy.rego: digest mismatch",
		},
		{
			name:    "wrong key",
			tarball: signedTarball(t, other, "k1", "s1", false),
			signing: SigningConfig{Required: true, Keys: []KeyConfig{{ID: "k1", Algorithm: "ES256", Key: ec.public}}},
			wantErr: "failed to verify JWT signature",
		},
		{
			name:    "unknown key id",
			tarball: signedTarball(t, ec, "k9", "s1", false),
			signing: SigningConfig{Required: true, Keys: []KeyConfig{{ID: "k1", Algorithm: "ES256", Key: ec.public}}},
			wantErr: "verification key corresponding to ID k9 not found",
		},
		{
			name:    "scope mismatch",
			tarball: signedTarball(t, ec, "k1", "s1", false),
			signing: SigningConfig{Required: true, Scope: "write", Keys: []KeyConfig{{ID: "k1", Algorithm: "ES256", Key: ec.public}}},
			wantErr: "scope mismatch",
		},
		{
			name:    "excluded file is not checked",
			tarball: signedTarball(t, ec, "k1", "s1", true),
			signing: SigningConfig{Required: true, ExcludeFiles: []string{"pdp/authz/*.rego"}, Keys: []KeyConfig{{ID: "k1", Algorithm: "ES256", Key: ec.public}}},
		},
		{
			name:    "optional signature still verified",
			tarball: signedTarball(t, ec, "k1", "s1", true),
			signing: SigningConfig{Keys: []KeyConfig{{ID: "k1", Algorithm: "ES256", Key: ec.public}}},
			wantErr: "digest mismatch",
		},
		{
			name:    "unsigned bundle with optional signature",
			tarball: tarGz(t, policyFiles("u1")),
			signing: SigningConfig{Keys: []KeyConfig{{ID: "k1", Algorithm: "ES256", Key: ec.public}}},
		},
		{
			name:    "unsigned bundle with required signature",
			tarball: tarGz(t, policyFiles("u1")),
			signing: SigningConfig{Required: true, Keys: []KeyConfig{{ID: "k1", Algorithm: "ES256", Key: ec.public}}},
			wantErr: "bundle missing .signatures.json file",
		},
		{
			name:    "signed bundle without signing config",
			tarball: signedTarball(t, ec, "k1", "s1", false),
			wantErr: "verification key not provided",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bundle.tar.gz")
			if err := os.WriteFile(path, tc.tarball, 0o644); err != nil {
				t.Fatal(err)
			}
			m, _, err := startTestManager(t, Config{Path: path, Signing: tc.signing, Watch: noWatch})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				if m.Active() == nil {
					t.Fatal("no active revision")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Start error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestSigningKeyFile(t *testing.T) {
	ec := newECKey(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "bundle-key.pem")
	if err := os.WriteFile(keyFile, []byte(ec.public), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bundle.tar.gz")
	if err := os.WriteFile(path, signedTarball(t, ec, "k1", "kf1", false), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _ := newTestManager(t, Config{Path: path, Watch: noWatch, Signing: SigningConfig{
		Required: true, Keys: []KeyConfig{{ID: "k1", Algorithm: "ES256", KeyFile: keyFile}},
	}})
	if got := m.Revision(); got != "kf1" {
		t.Errorf("revision = %q, want kf1", got)
	}
}
