// Package identity verifies caller credentials: JWTs against static keys or
// remote JWKS, mTLS peer certificates and gateway-asserted principals, with
// revocation.
package identity

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// Defaults applied by Config.Validate to fields left at their zero value.
const (
	// DefaultTokenHeader is the request header that carries the bearer token.
	DefaultTokenHeader = "authorization"
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// DefaultMaxTokenSize is the largest accepted token in bytes.
	DefaultMaxTokenSize = 8 << 10
	// DefaultJWKSRefreshInterval is the JWKS refresh period when the response
	// carries no Cache-Control max-age.
	DefaultJWKSRefreshInterval = 5 * time.Minute
	// DefaultJWKSMinRefreshInterval is the shortest time between two JWKS
	// fetches, also for refreshes triggered by an unknown kid.
	DefaultJWKSMinRefreshInterval = 30 * time.Second
	// DefaultJWKSMaxRefreshInterval is the longest Cache-Control max-age
	// honoured.
	DefaultJWKSMaxRefreshInterval = time.Hour
	// DefaultCacheMaxEntries bounds the verified-token cache.
	DefaultCacheMaxEntries = 10000
	// DefaultRevocationSyncInterval is how often a replica reads shared
	// revocations from Redis.
	DefaultRevocationSyncInterval = 500 * time.Millisecond
	// DefaultRevocationMaxStaleness is how old the last successful revocation
	// sync may be before tokens are denied with state.unavailable.
	DefaultRevocationMaxStaleness = 5 * time.Second
)

// Limits that configuration cannot raise.
const (
	// MaxJWKSBytes is the largest JWKS response read.
	MaxJWKSBytes = 1 << 20
	// MaxJWKSKeys is the largest number of keys accepted in one JWKS.
	MaxJWKSKeys = 100
	// MaxKeyIDLength is the longest accepted kid, in bytes.
	MaxKeyIDLength = 256
)

// Config lists the token issuers, the token source, the verified-token cache
// and revocation settings. The zero value accepts no token.
type Config struct {
	// Issuers are the trusted token issuers.
	Issuers []IssuerConfig `yaml:"issuers"`
	// TokenHeader is the lower-case header that carries the token. For
	// "authorization" (the default) the value must use the Bearer scheme;
	// any other header carries the bare token.
	TokenHeader string `yaml:"token_header"`
	// Cache configures the verified-token cache.
	Cache CacheConfig `yaml:"cache"`
	// Revocation configures the revocation list sync.
	Revocation RevocationConfig `yaml:"revocation"`
}

// IssuerConfig is one trusted token issuer.
type IssuerConfig struct {
	// Name identifies the issuer in routes, logs and revocations. Required,
	// unique.
	Name string `yaml:"name"`
	// Issuer is the exact iss claim value. Required, unique.
	Issuer string `yaml:"issuer"`
	// Audiences lists accepted aud values; a token must name at least one.
	// Required unless AllowMissingAudience is set.
	Audiences []string `yaml:"audiences"`
	// AllowMissingAudience accepts tokens without aud. A token that carries
	// aud must still name one of Audiences (with none configured, any aud is
	// rejected). Default false.
	AllowMissingAudience bool `yaml:"allow_missing_audience"`
	// Algorithms, when set, restricts the accepted alg values for every key
	// of this issuer. Default: no restriction beyond each key's own list.
	Algorithms []string `yaml:"algorithms"`
	// JWKSURL is an https URL serving the issuer's JSON Web Key Set.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSCAFile is a PEM file of CA certificates trusted for JWKSURL.
	// Default: the system roots.
	JWKSCAFile string `yaml:"jwks_ca_file"`
	// JWKSRefreshInterval is the refresh period when the JWKS response has
	// no Cache-Control max-age. Default 5m.
	JWKSRefreshInterval time.Duration `yaml:"jwks_refresh_interval"`
	// JWKSMinRefreshInterval is the minimum time between two fetches, which
	// also limits refreshes triggered by unknown kids and retries after a
	// failure. Default 30s.
	JWKSMinRefreshInterval time.Duration `yaml:"jwks_min_refresh_interval"`
	// JWKSMaxRefreshInterval caps the refresh period taken from
	// Cache-Control max-age. Default 1h.
	JWKSMaxRefreshInterval time.Duration `yaml:"jwks_max_refresh_interval"`
	// Keys are static verification keys and HMAC secrets.
	Keys []KeyConfig `yaml:"keys"`
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 30s
	// when unset; an explicit 0s disables it.
	Leeway *time.Duration `yaml:"leeway"`
	// RequiredClaims must be present in every token. iss is always required
	// and aud unless AllowMissingAudience is set. Default [exp] when unset;
	// an explicit empty list requires none.
	RequiredClaims []string `yaml:"required_claims"`
	// MaxTokenSize is the largest accepted token in bytes. Default 8192.
	MaxTokenSize int `yaml:"max_token_size"`
	// Types lists accepted typ header values, compared case-insensitively
	// with an optional "application/" prefix (RFC 7515, section 4.1.9). When
	// set, typ is required. Default: typ absent or "JWT".
	Types []string `yaml:"types"`
	// ScopeClaims names the claims read as scopes: a space-separated string
	// (scope) or an array of strings (scp). Default [scope, scp].
	ScopeClaims []string `yaml:"scope_claims"`
	// TenantClaim names a string claim exposed as the tenant. Default: none.
	TenantClaim string `yaml:"tenant_claim"`
}

// KeyConfig is one static key: a public key file or an HMAC secret. Exactly
// one of File, SecretEnv and SecretFile is set.
type KeyConfig struct {
	// ID is the kid the key matches. For a JWK or JWKS file it overrides
	// (JWK) or must be empty (JWKS, whose keys carry their own kid). A key
	// without an ID matches tokens without kid.
	ID string `yaml:"id"`
	// File is a PEM (public key or certificate), JWK or JWKS file.
	File string `yaml:"file"`
	// SecretEnv names an environment variable holding an HMAC secret.
	SecretEnv string `yaml:"secret_env"`
	// SecretFile is a file holding an HMAC secret; one trailing newline is
	// removed.
	SecretFile string `yaml:"secret_file"`
	// Algorithms lists the alg values this key verifies. Default: the JWK
	// alg, else by key type: RS256 (RSA), ES256/ES384/ES512 (by curve),
	// EdDSA (Ed25519), HS256 (secret).
	Algorithms []string `yaml:"algorithms"`
}

// CacheConfig configures the verified-token cache.
type CacheConfig struct {
	// Disabled turns the cache off. Default false.
	Disabled bool `yaml:"disabled"`
	// MaxEntries bounds the number of cached tokens. Default 10000.
	MaxEntries int `yaml:"max_entries"`
}

// RevocationConfig configures how revocations are shared through Redis. It
// has no effect without a Redis client.
type RevocationConfig struct {
	// SyncInterval is how often the shared revocation list is read. Default
	// 500ms.
	SyncInterval time.Duration `yaml:"sync_interval"`
	// MaxStaleness is the age of the last successful sync after which
	// tokens are denied with state.unavailable. Default 5s.
	MaxStaleness time.Duration `yaml:"max_staleness"`
}

// supportedAlgorithms are the JWS alg values this package verifies.
var supportedAlgorithms = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
}

// Validate applies defaults and reports every problem at once, each with its
// config key.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if c.TokenHeader == "" {
		c.TokenHeader = DefaultTokenHeader
	}
	c.TokenHeader = strings.ToLower(c.TokenHeader)
	if c.Cache.MaxEntries == 0 {
		c.Cache.MaxEntries = DefaultCacheMaxEntries
	}
	if c.Cache.MaxEntries < 0 {
		add("cache.max_entries", "must be positive, got %d", c.Cache.MaxEntries)
	}
	c.Revocation.validate(add)

	names := map[string]bool{}
	issuers := map[string]bool{}
	for i := range c.Issuers {
		ic := &c.Issuers[i]
		prefix := fmt.Sprintf("issuers[%d]", i)
		ic.validate(prefix, add)
		if ic.Name != "" && names[ic.Name] {
			add(prefix+".name", "duplicate issuer name %q", ic.Name)
		}
		if ic.Issuer != "" && issuers[ic.Issuer] {
			add(prefix+".issuer", "duplicate issuer %q", ic.Issuer)
		}
		names[ic.Name] = true
		issuers[ic.Issuer] = true
	}
	return errors.Join(errs...)
}

func (r *RevocationConfig) validate(add func(key, format string, args ...any)) {
	if r.SyncInterval == 0 {
		r.SyncInterval = DefaultRevocationSyncInterval
	}
	if r.MaxStaleness == 0 {
		r.MaxStaleness = DefaultRevocationMaxStaleness
	}
	if r.SyncInterval < 0 {
		add("revocation.sync_interval", "must be positive, got %s", r.SyncInterval)
	}
	if r.MaxStaleness <= r.SyncInterval {
		add("revocation.max_staleness", "must be longer than revocation.sync_interval (%s), got %s",
			r.SyncInterval, r.MaxStaleness)
	}
}

func (ic *IssuerConfig) validate(prefix string, add func(key, format string, args ...any)) {
	ic.applyDefaults()
	if ic.Name == "" {
		add(prefix+".name", "is required")
	}
	if ic.Issuer == "" {
		add(prefix+".issuer", "is required")
	}
	if len(ic.Audiences) == 0 && !ic.AllowMissingAudience {
		add(prefix+".audiences", "at least one audience is required (or set allow_missing_audience)")
	}
	for _, alg := range ic.Algorithms {
		if !slices.Contains(supportedAlgorithms, alg) {
			add(prefix+".algorithms", "unsupported algorithm %q (supported: %s)",
				alg, strings.Join(supportedAlgorithms, ", "))
		}
	}
	if ic.JWKSURL == "" && len(ic.Keys) == 0 {
		add(prefix, "either jwks_url or keys is required")
	}
	if ic.JWKSURL != "" {
		u, err := url.Parse(ic.JWKSURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			add(prefix+".jwks_url", "must be an absolute https URL, got %q", ic.JWKSURL)
		}
	}
	if ic.JWKSCAFile != "" {
		if _, err := os.Stat(ic.JWKSCAFile); err != nil {
			add(prefix+".jwks_ca_file", "%v", err)
		}
	}
	ic.validateDurations(prefix, add)
	for j := range ic.Keys {
		ic.Keys[j].validate(fmt.Sprintf("%s.keys[%d]", prefix, j), add)
	}
	if ic.MaxTokenSize < 0 {
		add(prefix+".max_token_size", "must be positive, got %d", ic.MaxTokenSize)
	}
	if *ic.Leeway < 0 {
		add(prefix+".leeway", "must not be negative, got %s", *ic.Leeway)
	}
}

func (ic *IssuerConfig) applyDefaults() {
	if ic.JWKSRefreshInterval == 0 {
		ic.JWKSRefreshInterval = DefaultJWKSRefreshInterval
	}
	if ic.JWKSMinRefreshInterval == 0 {
		ic.JWKSMinRefreshInterval = DefaultJWKSMinRefreshInterval
	}
	if ic.JWKSMaxRefreshInterval == 0 {
		ic.JWKSMaxRefreshInterval = DefaultJWKSMaxRefreshInterval
	}
	if ic.Leeway == nil {
		leeway := DefaultLeeway
		ic.Leeway = &leeway
	}
	if ic.RequiredClaims == nil {
		ic.RequiredClaims = []string{"exp"}
	}
	if ic.MaxTokenSize == 0 {
		ic.MaxTokenSize = DefaultMaxTokenSize
	}
	if ic.ScopeClaims == nil {
		ic.ScopeClaims = []string{"scope", "scp"}
	}
}

func (ic *IssuerConfig) validateDurations(prefix string, add func(key, format string, args ...any)) {
	if ic.JWKSMinRefreshInterval < 0 {
		add(prefix+".jwks_min_refresh_interval", "must be positive, got %s", ic.JWKSMinRefreshInterval)
	}
	if ic.JWKSRefreshInterval < ic.JWKSMinRefreshInterval {
		add(prefix+".jwks_refresh_interval", "must not be shorter than jwks_min_refresh_interval (%s), got %s",
			ic.JWKSMinRefreshInterval, ic.JWKSRefreshInterval)
	}
	if ic.JWKSMaxRefreshInterval < ic.JWKSRefreshInterval {
		add(prefix+".jwks_max_refresh_interval", "must not be shorter than jwks_refresh_interval (%s), got %s",
			ic.JWKSRefreshInterval, ic.JWKSMaxRefreshInterval)
	}
}

func (k *KeyConfig) validate(prefix string, add func(key, format string, args ...any)) {
	sources := 0
	for _, s := range []string{k.File, k.SecretEnv, k.SecretFile} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		add(prefix, "exactly one of file, secret_env and secret_file is required")
	}
	if len(k.ID) > MaxKeyIDLength {
		add(prefix+".id", "is longer than %d bytes", MaxKeyIDLength)
	}
	for _, alg := range k.Algorithms {
		if !slices.Contains(supportedAlgorithms, alg) {
			add(prefix+".algorithms", "unsupported algorithm %q", alg)
			continue
		}
		secret := k.SecretEnv != "" || k.SecretFile != ""
		if secret != isHMAC(alg) {
			add(prefix+".algorithms", "algorithm %q does not match the key type", alg)
		}
	}
	if k.SecretEnv != "" {
		if _, ok := os.LookupEnv(k.SecretEnv); !ok {
			add(prefix+".secret_env", "environment variable %s is not set", k.SecretEnv)
		}
	}
	for key, path := range map[string]string{"file": k.File, "secret_file": k.SecretFile} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			add(prefix+"."+key, "%v", err)
		}
	}
}

func isHMAC(alg string) bool { return strings.HasPrefix(alg, "HS") }
