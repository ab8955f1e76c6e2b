package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const tokenConfig = `
routes:
  - name: api
    paths: ["/api/**"]
    token: {required: true, issuers: [corp]}
identity:
  issuers:
    - name: corp
      issuer: https://idp.example.test
      audiences: [pdp]
      keys: [{id: k1, file: "%s", algorithms: [ES256]}]
      tenant_claim: tenant
`

// writeES256Key writes the public half of a new P-256 key as PEM and
// returns the private key.
func writeES256Key(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	block := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := os.WriteFile(path, block, 0o644); err != nil {
		t.Fatal(err)
	}
	return key
}

func signToken(t *testing.T, key *ecdsa.PrivateKey, expires time.Time) string {
	t.Helper()
	token := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": "https://idp.example.test", "aud": "pdp", "sub": "alice",
		"exp": expires.Unix(), "iat": time.Now().Unix(),
		"roles": []string{"reader"}, "tenant": "t-1",
	})
	token.Header["kid"] = "k1"
	signed, err := token.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func TestServeBearerTokens(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "k1.pem")
	key := writeES256Key(t, keyFile)
	configFile := filepath.Join(dir, "pdp.yaml")
	if err := os.WriteFile(configFile, []byte(fmt.Sprintf(tokenConfig, keyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, configFile)

	valid := signToken(t, key, time.Now().Add(time.Hour))
	cases := []struct {
		name, authorization, wantReason string
		wantStatus                      int
	}{
		{"valid token", "Bearer " + valid, "", http.StatusOK},
		{"no token", "", "token.missing", http.StatusUnauthorized},
		{"expired token", "Bearer " + signToken(t, key, time.Now().Add(-time.Hour)), "token.expired",
			http.StatusUnauthorized},
		{"tampered token", "Bearer " + valid[:len(valid)-4] + "AAAA", "token.invalid", http.StatusUnauthorized},
		{"basic scheme", "Basic YWxpY2U6cHc=", "token.invalid", http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, s.base+"/ext_authz/api/items", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.authorization != "" {
				req.Header.Set("Authorization", tc.authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if got := resp.Header.Get("X-Pdp-Reason"); tc.wantReason != "" && got != tc.wantReason {
				t.Errorf("x-pdp-reason = %q, want %q", got, tc.wantReason)
			}
			if tc.wantStatus == http.StatusUnauthorized &&
				!strings.HasPrefix(resp.Header.Get("Www-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", resp.Header.Get("Www-Authenticate"))
			}
			if tc.wantStatus == http.StatusOK && resp.Header.Get("X-Pdp-Subject") != "alice" {
				t.Errorf("x-pdp-subject = %q, want alice", resp.Header.Get("X-Pdp-Subject"))
			}
		})
	}

	logs := s.stderr.String()
	if strings.Contains(logs, valid) || strings.Contains(logs, strings.Split(valid, ".")[2]) {
		t.Errorf("server log contains the token or its signature")
	}
	var audit strings.Builder
	files, _ := filepath.Glob(filepath.Join(s.auditDir, "*.jsonl"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		audit.Write(b)
	}
	if strings.Contains(audit.String(), strings.Split(valid, ".")[2]) {
		t.Errorf("audit log contains the token signature")
	}
	if !strings.Contains(audit.String(), `"subject":"alice"`) {
		t.Errorf("audit log lacks the verified subject")
	}
}
