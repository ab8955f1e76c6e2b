package identity

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/authgate/pdp/pdp"
)

func TestConfigYAMLAndDefaults(t *testing.T) {
	t.Setenv("PDP_TEST_SECRET", testSecret)
	const doc = `
issuers:
  - name: idp
    issuer: https://idp.example.test
    audiences: [pdp]
    types: [at+jwt]
    jwks_url: https://idp.example.test/.well-known/jwks.json
    jwks_refresh_interval: 10m
    keys:
      - id: v1
        secret_env: PDP_TEST_SECRET
        algorithms: [HS256]
    leeway: 5s
    scope_claims: [scp]
    tenant_claim: tid
token_header: X-Token
revocation:
  sync_interval: 250ms
`
	var cfg Config
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	ic := cfg.Issuers[0]
	if ic.JWKSRefreshInterval != 10*time.Minute || ic.JWKSMinRefreshInterval != DefaultJWKSMinRefreshInterval {
		t.Errorf("refresh intervals = %s, %s", ic.JWKSRefreshInterval, ic.JWKSMinRefreshInterval)
	}
	if *ic.Leeway != 5*time.Second || ic.MaxTokenSize != DefaultMaxTokenSize {
		t.Errorf("leeway = %s, max token size = %d", ic.Leeway, ic.MaxTokenSize)
	}
	if len(ic.RequiredClaims) != 1 || ic.RequiredClaims[0] != "exp" {
		t.Errorf("required claims = %v, want [exp]", ic.RequiredClaims)
	}
	if cfg.TokenHeader != "x-token" {
		t.Errorf("token header = %q, want x-token", cfg.TokenHeader)
	}
	if cfg.Revocation.SyncInterval != 250*time.Millisecond || cfg.Revocation.MaxStaleness != DefaultRevocationMaxStaleness {
		t.Errorf("revocation = %+v", cfg.Revocation)
	}
	if cfg.Cache.MaxEntries != DefaultCacheMaxEntries {
		t.Errorf("cache max entries = %d", cfg.Cache.MaxEntries)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	cfg := Config{
		Issuers: []IssuerConfig{
			{Name: "a", Issuer: "https://a.example.test", JWKSURL: "http://a.example.test/jwks",
				Algorithms: []string{"none"}},
			{Name: "a", Issuer: "https://a.example.test", Audiences: []string{"x"},
				Keys: []KeyConfig{{ID: "k", File: "/nonexistent/key.pem", SecretEnv: "X"}}},
			{Audiences: []string{"x"}, Keys: []KeyConfig{{SecretEnv: "PDP_TEST_UNSET_VARIABLE",
				Algorithms: []string{"RS256"}}}},
		},
		Revocation: RevocationConfig{SyncInterval: time.Second, MaxStaleness: time.Second},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted an invalid config")
	}
	for _, want := range []string{
		"issuers[0].audiences", "issuers[0].algorithms", "issuers[0].jwks_url",
		"issuers[1].name: duplicate", "issuers[1].issuer: duplicate", "issuers[1].keys[0]: exactly one",
		"issuers[2].name: is required", "issuers[2].issuer: is required",
		"issuers[2].keys[0].algorithms", "issuers[2].keys[0].secret_env", "revocation.max_staleness",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestTokenFromHeaders(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		header  string
		want    string
		reason  pdp.Reason
	}{
		{"bearer", map[string]string{"authorization": "Bearer abc.def.ghi"}, "", "abc.def.ghi", ""},
		{"scheme case", map[string]string{"authorization": "bEaReR abc.def.ghi"}, "", "abc.def.ghi", ""},
		{"absent", map[string]string{}, "", "", ""},
		{"basic", map[string]string{"authorization": "Basic dXNlcjpwdw=="}, "", "", pdp.ReasonTokenInvalid},
		{"no token", map[string]string{"authorization": "Bearer "}, "", "", pdp.ReasonTokenInvalid},
		{"no space", map[string]string{"authorization": "Bearerabc"}, "", "", pdp.ReasonTokenInvalid},
		{"two tokens", map[string]string{"authorization": "Bearer a.b.c,Bearer d.e.f"}, "", "", pdp.ReasonTokenInvalid},
		{"inner space", map[string]string{"authorization": "Bearer a.b c"}, "", "", pdp.ReasonTokenInvalid},
		{"custom header", map[string]string{"x-token": " a.b.c "}, "X-Token", "a.b.c", ""},
		{"custom header bad", map[string]string{"x-token": "a.b\nc"}, "x-token", "", pdp.ReasonTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TokenFromHeaders(tt.headers, tt.header)
			if reasonOf(err) != tt.reason {
				t.Fatalf("reason = %q, want %q (%v)", reasonOf(err), tt.reason, err)
			}
			if got != tt.want {
				t.Errorf("token = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseCompact(f *testing.F) {
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.AAAA")
	f.Add(`a.b.c`)
	f.Fuzz(func(t *testing.T, token string) {
		jws, err := parseCompact(token)
		if err != nil {
			return
		}
		if _, err := checkHeader(jws.header); err != nil {
			return
		}
		_, _ = parseClaims(jws.claims)
	})
}
