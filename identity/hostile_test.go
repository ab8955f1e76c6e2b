package identity

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/authgate/pdp/pdp"
)

// claimsJSON renders validClaims with changes applied; a nil value removes
// the claim.
func claimsJSON(t *testing.T, changes map[string]any) string {
	t.Helper()
	c := validClaims(testNow)
	for k, v := range changes {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// flipTrailingBits changes the last character of a base64url segment so
// that it decodes to the same bytes under a lenient decoder but carries
// non-zero padding bits.
func flipTrailingBits(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}

func TestVerifyTokenHostile(t *testing.T) {
	k := testSigningKeys(t)
	strict := staticIssuer(t)
	strict.Name = "strict"
	strict.Issuer = "https://strict.example.test"
	strict.Types = []string{"at+jwt"}
	a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{staticIssuer(t), strict}}, Options{})

	rsaHeader := `{"alg":"RS256","kid":"rsa1","typ":"JWT"}`
	valid := signRaw(t, "RS256", k.rsa, rsaHeader, claimsJSON(t, nil))
	parts := strings.Split(valid, ".")
	rsaPublicPEM := publicPEM(t, &k.rsa.PublicKey)
	esZero := strings.Join([]string{
		b64.EncodeToString([]byte(`{"alg":"ES256","kid":"ec1"}`)),
		b64.EncodeToString([]byte(claimsJSON(t, nil))),
		b64.EncodeToString(make([]byte, 64)),
	}, ".")
	big := signRaw(t, "RS256", k.rsa, rsaHeader, claimsJSON(t, map[string]any{"pad": strings.Repeat("x", 1<<20)}))
	strictClaims := claimsJSON(t, map[string]any{"iss": strict.Issuer})

	tests := []struct {
		name  string
		token string
		want  pdp.Reason
	}{
		{"alg none", strings.Join([]string{
			b64.EncodeToString([]byte(`{"alg":"none"}`)), parts[1], "AA"}, "."), pdp.ReasonTokenInvalid},
		{"alg none without signature", strings.Join([]string{
			b64.EncodeToString([]byte(`{"alg":"none"}`)), parts[1], ""}, "."), pdp.ReasonTokenInvalid},
		{"alg NoNe", strings.Join([]string{
			b64.EncodeToString([]byte(`{"alg":"NoNe"}`)), parts[1], "AA"}, "."), pdp.ReasonTokenInvalid},
		{"HS256 keyed with RSA public key", signRaw(t, "HS256", rsaPublicPEM,
			`{"alg":"HS256","kid":"rsa1"}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"HS256 keyed with RSA public key no kid", signRaw(t, "HS256", rsaPublicPEM,
			`{"alg":"HS256"}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"RS256 token naming HMAC kid", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"hs1"}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"ES256 r=s=0", esZero, pdp.ReasonTokenInvalid},
		{"ES256 signed, RSA kid", signRaw(t, "ES256", k.ec,
			`{"alg":"ES256","kid":"rsa1"}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"unsupported alg", signRaw(t, "RS256", k.rsa,
			`{"alg":"Rs256","kid":"rsa1"}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"wrong audience", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"aud": "other"})), pdp.ReasonTokenInvalid},
		{"audience array without ours", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"aud": []string{"a", "b"}})), pdp.ReasonTokenInvalid},
		{"numeric aud", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"aud": 123})), pdp.ReasonTokenInvalid},
		{"empty aud array", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"aud": []string{}})), pdp.ReasonTokenInvalid},
		{"missing aud", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"aud": nil})), pdp.ReasonTokenInvalid},
		{"wrong iss", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"iss": "https://evil.example.test"})), pdp.ReasonTokenInvalid},
		{"missing iss", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"iss": nil})), pdp.ReasonTokenInvalid},
		{"exp 0", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"exp": 0})), pdp.ReasonTokenExpired},
		{"expired", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"exp": testNow.Add(-time.Hour).Unix()})), pdp.ReasonTokenExpired},
		{"expired beyond leeway by 1s", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"exp": testNow.Add(-DefaultLeeway - time.Second).Unix()})),
			pdp.ReasonTokenExpired},
		{"exp as numeric string", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"exp": fmt.Sprint(testNow.Add(time.Hour).Unix())})), pdp.ReasonTokenInvalid},
		{"exp null", signRaw(t, "RS256", k.rsa, rsaHeader,
			strings.Replace(claimsJSON(t, nil), `"exp":`, `"exp":null,"x":`, 1)), pdp.ReasonTokenInvalid},
		{"exp missing", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"exp": nil})), pdp.ReasonTokenInvalid},
		{"exp huge exponent", signRaw(t, "RS256", k.rsa, rsaHeader,
			strings.Replace(claimsJSON(t, nil), `"exp":`, `"exp":1e999999999,"x":`, 1)), pdp.ReasonTokenInvalid},
		{"nbf in the future", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"nbf": testNow.Add(time.Hour).Unix()})), pdp.ReasonTokenInvalid},
		{"iat in the future", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"iat": testNow.Add(time.Hour).Unix()})), pdp.ReasonTokenInvalid},
		{"sub not a string", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"sub": 7})), pdp.ReasonTokenInvalid},
		{"scope not a string", signRaw(t, "RS256", k.rsa, rsaHeader,
			claimsJSON(t, map[string]any{"scope": map[string]any{"a": 1}})), pdp.ReasonTokenInvalid},
		{"unknown kid", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"nope"}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"kid with path characters", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"../../../dev/null"}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"kid with NUL", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"rsa1\u0000"}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"kid not a string", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":1}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"jku header", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"rsa1","jku":"https://evil.example.test/jwks"}`, claimsJSON(t, nil)),
			pdp.ReasonTokenInvalid},
		{"x5u header", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"rsa1","x5u":"https://evil.example.test/cert"}`, claimsJSON(t, nil)),
			pdp.ReasonTokenInvalid},
		{"jwk header", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"rsa1","jwk":{"kty":"oct","k":"AAAA"}}`, claimsJSON(t, nil)),
			pdp.ReasonTokenInvalid},
		{"x5c header", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"rsa1","x5c":["MIIB"]}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"unknown crit", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"rsa1","crit":["exp"],"exp":1}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"b64 false", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"rsa1","b64":false,"crit":["b64"]}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"nested JWT", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"rsa1","cty":"JWT"}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"1 MB token", big, pdp.ReasonTokenInvalid},
		{"signature padding", valid + "==", pdp.ReasonTokenInvalid},
		{"signature trailing bits", parts[0] + "." + parts[1] + "." + flipTrailingBits(parts[2]),
			pdp.ReasonTokenInvalid},
		{"signature CR LF", parts[0] + "." + parts[1] + "." + parts[2][:100] + "\r\n" + parts[2][100:],
			pdp.ReasonTokenInvalid},
		{"claims padding", parts[0] + "." + parts[1] + "=." + parts[2], pdp.ReasonTokenInvalid},
		{"header space", parts[0] + " ." + parts[1] + "." + parts[2], pdp.ReasonTokenInvalid},
		{"four segments", valid + ".AAAA", pdp.ReasonTokenInvalid},
		{"JWE five segments", "a.b.c.d.e", pdp.ReasonTokenInvalid},
		{"duplicate header key", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"rsa1","kid":"ec1"}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"duplicate claim key", signRaw(t, "RS256", k.rsa, rsaHeader,
			strings.Replace(claimsJSON(t, nil), `"sub":"user-1"`, `"sub":"user-1","sub":"admin"`, 1)),
			pdp.ReasonTokenInvalid},
		{"duplicate nested claim key", signRaw(t, "RS256", k.rsa, rsaHeader,
			strings.Replace(claimsJSON(t, nil), `"sub":`, `"ext":{"role":"a","role":"b"},"sub":`, 1)),
			pdp.ReasonTokenInvalid},
		{"claims invalid UTF-8", signRaw(t, "RS256", k.rsa, rsaHeader,
			strings.Replace(claimsJSON(t, nil), `"user-1"`, "\"user-\xff\"", 1)), pdp.ReasonTokenInvalid},
		{"claims not an object", signRaw(t, "RS256", k.rsa, rsaHeader, `["iss"]`), pdp.ReasonTokenInvalid},
		{"wrong typ", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"rsa1","typ":"secevent+jwt"}`, claimsJSON(t, nil)), pdp.ReasonTokenInvalid},
		{"typ JWT where at+jwt required", signRaw(t, "RS256", k.rsa, rsaHeader, strictClaims),
			pdp.ReasonTokenInvalid},
		{"typ missing where at+jwt required", signRaw(t, "RS256", k.rsa,
			`{"alg":"RS256","kid":"rsa1"}`, strictClaims), pdp.ReasonTokenInvalid},
		{"tampered claims", parts[0] + "." + b64.EncodeToString([]byte(
			claimsJSON(t, map[string]any{"sub": "admin"}))) + "." + parts[2], pdp.ReasonTokenInvalid},
		{"empty token", "", pdp.ReasonTokenMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := a.VerifyToken(context.Background(), tt.token, nil)
			if got := reasonOf(err); got != tt.want {
				t.Fatalf("reason = %q, want %q (error: %v)", got, tt.want, err)
			}
			t.Logf("rejected: %v", err)
			if id != nil {
				t.Errorf("identity = %+v, want nil", id)
			}
		})
	}
}

func TestVerifyTokenAccepts(t *testing.T) {
	k := testSigningKeys(t)
	strict := staticIssuer(t)
	strict.Name = "strict"
	strict.Issuer = "https://strict.example.test"
	strict.Types = []string{"at+jwt"}
	a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{staticIssuer(t), strict}}, Options{})

	tests := []struct {
		name   string
		header string
		alg    string
		key    any
		claims string
	}{
		{"RS256", `{"alg":"RS256","kid":"rsa1"}`, "RS256", k.rsa, claimsJSON(t, nil)},
		{"ES256", `{"alg":"ES256","kid":"ec1"}`, "ES256", k.ec, claimsJSON(t, nil)},
		{"EdDSA", `{"alg":"EdDSA","kid":"ed1"}`, "EdDSA", k.ed, claimsJSON(t, nil)},
		{"HS256", `{"alg":"HS256","kid":"hs1"}`, "HS256", []byte(testSecret), claimsJSON(t, nil)},
		{"no kid", `{"alg":"ES256"}`, "ES256", k.ec, claimsJSON(t, nil)},
		{"expired within leeway", `{"alg":"RS256","kid":"rsa1"}`, "RS256", k.rsa,
			claimsJSON(t, map[string]any{"exp": testNow.Add(-DefaultLeeway / 2).Unix()})},
		{"aud array with ours", `{"alg":"RS256","kid":"rsa1"}`, "RS256", k.rsa,
			claimsJSON(t, map[string]any{"aud": []string{"other", testAudience}})},
		{"fractional exp", `{"alg":"RS256","kid":"rsa1"}`, "RS256", k.rsa,
			strings.Replace(claimsJSON(t, nil), `"exp":`, `"exp":1.8e9,"x":`, 1)},
		{"typ at+jwt", `{"alg":"RS256","kid":"rsa1","typ":"application/AT+JWT"}`, "RS256", k.rsa,
			claimsJSON(t, map[string]any{"iss": strict.Issuer})},
		{"x5t thumbprint ignored", `{"alg":"RS256","kid":"rsa1","x5t":"abc"}`, "RS256", k.rsa, claimsJSON(t, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := signRaw(t, tt.alg, tt.key, tt.header, tt.claims)
			id, err := a.VerifyToken(context.Background(), token, nil)
			if err != nil {
				t.Fatalf("VerifyToken: %v", err)
			}
			if id.Subject != "user-1" {
				t.Errorf("subject = %q, want user-1", id.Subject)
			}
			if !id.Verified || id.Method != "jwt" {
				t.Errorf("verified=%v method=%q, want true jwt", id.Verified, id.Method)
			}
		})
	}
}

func TestVerifyTokenIdentity(t *testing.T) {
	k := testSigningKeys(t)
	cfg := staticIssuer(t)
	cfg.ScopeClaims = []string{"scope", "scp"}
	a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{cfg}}, Options{})
	claims := validClaims(testNow)
	claims["scp"] = []string{"admin"}
	token := signClaims(t, "RS256", "rsa1", k.rsa, claims)

	id, err := a.VerifyToken(context.Background(), token, []string{"test"})
	if err != nil {
		t.Fatalf("VerifyToken: %v", err)
	}
	if id.Issuer != testIssuer {
		t.Errorf("issuer = %q", id.Issuer)
	}
	if fmt.Sprint(id.Audience) != "[pdp]" {
		t.Errorf("audience = %v", id.Audience)
	}
	if fmt.Sprint(id.Scopes) != "[read write admin]" {
		t.Errorf("scopes = %v", id.Scopes)
	}
	if id.Tenant != "t-42" {
		t.Errorf("tenant = %q", id.Tenant)
	}
	if id.KeyID != "rsa1" || id.TokenID != "token-1" {
		t.Errorf("key id = %q, token id = %q", id.KeyID, id.TokenID)
	}
	if id.ExpiresAt != testNow.Add(time.Hour).Unix() {
		t.Errorf("expires at = %d", id.ExpiresAt)
	}
	if id.Claims["exp"] != testNow.Add(time.Hour).Unix() {
		t.Errorf("claims exp = %#v, want int64", id.Claims["exp"])
	}
	if _, err := a.VerifyToken(context.Background(), token, []string{"other"}); reasonOf(err) != pdp.ReasonTokenInvalid {
		t.Errorf("unknown issuer name: reason = %q, want token.invalid", reasonOf(err))
	}
}

func TestVerifyTokenIssuerFilter(t *testing.T) {
	k := testSigningKeys(t)
	second := staticIssuer(t)
	second.Name = "second"
	second.Issuer = "https://second.example.test"
	a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{staticIssuer(t), second}}, Options{})
	token := signClaims(t, "RS256", "rsa1", k.rsa, validClaims(testNow))

	if _, err := a.VerifyToken(context.Background(), token, []string{"test"}); err != nil {
		t.Fatalf("issuer test: %v", err)
	}
	// The cached entry must not leak across the route's issuer list.
	if _, err := a.VerifyToken(context.Background(), token, []string{"second"}); reasonOf(err) != pdp.ReasonTokenInvalid {
		t.Errorf("issuer second: reason = %q, want token.invalid", reasonOf(err))
	}
}

func TestHMACSecretRotation(t *testing.T) {
	const previous = "previous-secret-previous-secret-"
	t.Setenv("PDP_TEST_HS_CURRENT", testSecret)
	t.Setenv("PDP_TEST_HS_PREVIOUS", previous)
	cfg := IssuerConfig{
		Name: "svc", Issuer: testIssuer, Audiences: []string{testAudience},
		Keys: []KeyConfig{
			{ID: "v2", SecretEnv: "PDP_TEST_HS_CURRENT", Algorithms: []string{"HS256", "HS512"}},
			{ID: "v1", SecretEnv: "PDP_TEST_HS_PREVIOUS"},
		},
	}
	_, err := New(Config{Issuers: []IssuerConfig{cfg}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "needs at least 64") {
		t.Fatalf("HS512 with a 32-byte secret: error = %v, want a minimum length error", err)
	}
	cfg.Keys[0].Algorithms = []string{"HS256"}
	a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{cfg}}, Options{})

	for _, tc := range []struct{ kid, secret string }{{"v2", testSecret}, {"v1", previous}} {
		token := signClaims(t, "HS256", tc.kid, []byte(tc.secret), validClaims(testNow))
		if _, err := a.VerifyToken(context.Background(), token, nil); err != nil {
			t.Errorf("kid %s: %v", tc.kid, err)
		}
	}
	wrongKid := signClaims(t, "HS256", "v1", []byte(testSecret), validClaims(testNow))
	if _, err := a.VerifyToken(context.Background(), wrongKid, nil); reasonOf(err) != pdp.ReasonTokenInvalid {
		t.Errorf("current secret under kid v1: reason = %q, want token.invalid", reasonOf(err))
	}
}

func TestHMACSecretTooShort(t *testing.T) {
	t.Setenv("PDP_TEST_HS_SHORT", "s3cr3t-value")
	cfg := IssuerConfig{Name: "svc", Issuer: testIssuer, Audiences: []string{testAudience},
		Keys: []KeyConfig{{SecretEnv: "PDP_TEST_HS_SHORT"}}}
	_, err := New(Config{Issuers: []IssuerConfig{cfg}}, Options{})
	if err == nil {
		t.Fatal("New accepted a 12-byte HS256 secret")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %q shows the secret", err)
	}
}

func TestParseKeysRejectsPrivateKey(t *testing.T) {
	k := testSigningKeys(t)
	der, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	data := "-----BEGIN PRIVATE KEY-----\n" + b64std(der) + "\n-----END PRIVATE KEY-----\n"
	if _, err := parseKeys([]byte(data), "x", nil); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Errorf("error = %v, want a private key error", err)
	}
}

func TestTokensNeverLogged(t *testing.T) {
	k := testSigningKeys(t)
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{staticIssuer(t)}}, Options{Logger: logger})
	ctx := context.Background()

	tokens := []string{
		signClaims(t, "RS256", "rsa1", k.rsa, validClaims(testNow)),
		signClaims(t, "HS256", "hs1", []byte(testSecret), validClaims(testNow)),
		signClaims(t, "ES256", "unknown", k.ec, validClaims(testNow)),
		signRaw(t, "RS256", k.rsa, `{"alg":"RS256","kid":"rsa1","kid":"x"}`, claimsJSON(t, nil)),
	}
	if err := a.Revoke(ctx, Revocation{Kind: RevokeTokenID, Value: "token-1", ExpiresAt: testNow.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, token := range tokens {
		_, err := a.VerifyToken(ctx, token, nil)
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, token := range tokens {
		signature := token[strings.LastIndexByte(token, '.')+1:]
		for _, text := range append(errs, logs.String()) {
			if strings.Contains(text, signature) {
				t.Errorf("token signature appears in %q", text)
			}
		}
	}
	if strings.Contains(logs.String(), testSecret) || strings.Contains(strings.Join(errs, " "), testSecret) {
		t.Error("HMAC secret appears in logs or errors")
	}
}
