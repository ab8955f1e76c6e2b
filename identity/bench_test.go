package identity

import (
	"context"
	"testing"
)

// BenchmarkVerifyToken measures VerifyToken per algorithm with the
// verified-token cache disabled (cold: full parse and signature check) and
// enabled (cached: hash lookup and revocation check).
func BenchmarkVerifyToken(b *testing.B) {
	k := testSigningKeys(b)
	algorithms := []struct {
		alg, kid string
		key      any
	}{
		{"RS256", "rsa1", k.rsa},
		{"ES256", "ec1", k.ec},
		{"EdDSA", "ed1", k.ed},
		{"HS256", "hs1", []byte(testSecret)},
	}
	for _, mode := range []string{"cold", "cached"} {
		cfg := Config{Issuers: []IssuerConfig{staticIssuer(b)}, Cache: CacheConfig{Disabled: mode == "cold"}}
		a := newTestAuthenticator(b, cfg, Options{})
		for _, tc := range algorithms {
			token := signClaims(b, tc.alg, tc.kid, tc.key, validClaims(testNow))
			b.Run(tc.alg+"/"+mode, func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := a.VerifyToken(ctx, token, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
