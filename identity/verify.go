package identity

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authgate/pdp/pdp"
)

// VerifyToken verifies a compact JWS bearer token against the named issuers
// (every configured issuer when issuers is empty): size, encoding, header,
// signature, claims and revocation. A rejected token returns a
// pdp.ReasonError with token.missing, token.invalid, token.expired,
// token.revoked or state.unavailable (revocations cannot be read).
func (a *Authenticator) VerifyToken(ctx context.Context, token string, issuers []string) (*pdp.Identity, error) {
	if token == "" {
		return nil, pdp.Deny(pdp.ReasonTokenMissing, errors.New("no bearer token"))
	}
	allowed, maxSize, err := a.allowedIssuers(issuers)
	if err != nil {
		return nil, err
	}
	// The size is checked before any decoding so that an oversized token
	// costs no parsing.
	if len(token) > maxSize {
		return nil, pdp.Denyf(pdp.ReasonTokenInvalid, "token is %d bytes, the limit is %d", len(token), maxSize)
	}
	now := a.now()

	var digest [32]byte
	if a.cache != nil {
		digest = sha256.Sum256([]byte(token))
		if entry, ok := a.cache.get(digest, now); ok && allowed(entry.issuer) {
			if err := a.checkRevoked(entry.issuer, entry.identity, now); err != nil {
				return nil, err
			}
			copied := *entry.identity
			return &copied, nil
		}
	}

	v, err := a.verify(ctx, token, allowed, now)
	if err != nil {
		return nil, err
	}
	if err := a.checkRevoked(v.issuer, v.identity, now); err != nil {
		return nil, err
	}
	// Tokens without exp are never cached, so a cache entry cannot outlive
	// its token.
	if a.cache != nil && !v.expiresAt.IsZero() {
		a.cache.add(digest, &cacheEntry{
			issuer: v.issuer, identity: v.identity, expiresAt: v.expiresAt, generation: v.generation,
		})
	}
	copied := *v.identity
	return &copied, nil
}

// verifiedToken is the outcome of every check except revocation.
type verifiedToken struct {
	issuer   *issuer
	identity *pdp.Identity
	// expiresAt is the token's exp, zero when it has none.
	expiresAt time.Time
	// generation is the issuer key set generation the signature was
	// verified with.
	generation uint64
}

// allowedIssuers returns a membership test for the named issuers and the
// largest token size any of them accepts.
func (a *Authenticator) allowedIssuers(names []string) (func(*issuer) bool, int, error) {
	if len(a.issuers) == 0 {
		return nil, 0, pdp.Deny(pdp.ReasonTokenInvalid, errors.New("no token issuers are configured"))
	}
	if len(names) == 0 {
		return func(*issuer) bool { return true }, a.maxSize, nil
	}
	set := make(map[*issuer]bool, len(names))
	maxSize := 0
	for _, name := range names {
		iss := a.byName[name]
		if iss == nil {
			return nil, 0, pdp.Denyf(pdp.ReasonTokenInvalid, "route names issuer %q, which is not configured", name)
		}
		set[iss] = true
		maxSize = max(maxSize, iss.cfg.MaxTokenSize)
	}
	return func(iss *issuer) bool { return set[iss] }, maxSize, nil
}

// verify runs every check except revocation.
func (a *Authenticator) verify(ctx context.Context, token string, allowed func(*issuer) bool,
	now time.Time) (*verifiedToken, error) {
	jws, err := parseCompact(token)
	if err != nil {
		return nil, pdp.Deny(pdp.ReasonTokenInvalid, err)
	}
	hdr, err := checkHeader(jws.header)
	if err != nil {
		return nil, pdp.Deny(pdp.ReasonTokenInvalid, err)
	}
	c, err := parseClaims(jws.claims)
	if err != nil {
		return nil, pdp.Deny(pdp.ReasonTokenInvalid, err)
	}

	// The issuer is chosen by the unverified iss claim; its keys then
	// decide whether that claim can be trusted.
	iss := a.byIss[c.issuer]
	if iss == nil || !allowed(iss) {
		return nil, pdp.Denyf(pdp.ReasonTokenInvalid, "iss %q is not a trusted issuer here", c.issuer)
	}
	if len(token) > iss.cfg.MaxTokenSize {
		return nil, pdp.Denyf(pdp.ReasonTokenInvalid, "token is %d bytes, issuer %s accepts %d",
			len(token), iss.cfg.Name, iss.cfg.MaxTokenSize)
	}
	if err := checkType(hdr.typ, iss.cfg.Types); err != nil {
		return nil, pdp.Deny(pdp.ReasonTokenInvalid, err)
	}
	if len(iss.cfg.Algorithms) > 0 && !slices.Contains(iss.cfg.Algorithms, hdr.alg) {
		return nil, pdp.Denyf(pdp.ReasonTokenInvalid, "alg %q is not allowed for issuer %s",
			hdr.alg, iss.cfg.Name)
	}

	key, generation, err := a.verifySignature(ctx, iss, hdr, jws)
	if err != nil {
		return nil, pdp.Deny(pdp.ReasonTokenInvalid, err)
	}
	if err := validateClaims(c, iss, now); err != nil {
		return nil, err
	}
	id, err := buildIdentity(c, iss, key.id)
	if err != nil {
		return nil, err
	}
	v := &verifiedToken{issuer: iss, identity: id, generation: generation}
	if c.hasExp {
		v.expiresAt = c.expiresAt
	}
	return v, nil
}

// verifySignature finds the issuer's keys for the token's kid (every key
// when the token has none) and verifies the signature with the first key
// that allows alg. An unknown kid triggers a rate-limited JWKS refresh,
// which this request waits for at most until ctx ends.
func (a *Authenticator) verifySignature(ctx context.Context, iss *issuer, hdr header,
	jws *compactJWS) (*verificationKey, uint64, error) {
	method := jwt.GetSigningMethod(hdr.alg)
	if method == nil || !slices.Contains(supportedAlgorithms, hdr.alg) {
		return nil, 0, fmt.Errorf("alg %q is not supported", hdr.alg)
	}

	set := iss.keys.Load()
	candidates := set.candidates(hdr.kid)
	if len(candidates) == 0 && hdr.kid != "" && iss.remote != nil {
		if done := iss.remote.refresh(a.base); done != nil {
			select {
			case <-done:
			case <-ctx.Done():
				return nil, 0, fmt.Errorf("kid %q is unknown and the JWKS refresh did not finish in time: %w",
					hdr.kid, ctx.Err())
			}
		}
		set = iss.keys.Load()
		candidates = set.candidates(hdr.kid)
	}
	if len(candidates) == 0 {
		return nil, 0, fmt.Errorf("no key of issuer %s matches kid %q", iss.cfg.Name, hdr.kid)
	}

	tried := 0
	for _, k := range candidates {
		if !k.allows(hdr.alg) {
			continue
		}
		tried++
		if err := method.Verify(jws.signingInput, jws.signature, k.public); err == nil {
			return k, set.generation, nil
		}
	}
	if tried == 0 {
		return nil, 0, fmt.Errorf("alg %s is not allowed for the keys matching kid %q", hdr.alg, hdr.kid)
	}
	return nil, 0, errors.New("signature verification failed")
}

// candidates returns the keys a token with kid may be verified with. A
// token without kid may use any key, as single-key issuers often omit it.
func (set *keySet) candidates(kid string) []*verificationKey {
	if kid == "" {
		return set.keys
	}
	return set.byID[kid]
}

// checkRevoked denies a token whose jti, subject or key id is revoked.
func (a *Authenticator) checkRevoked(iss *issuer, id *pdp.Identity, now time.Time) error {
	set, err := a.revocations.current()
	if err != nil {
		return pdp.Deny(pdp.ReasonStateUnavailable, err)
	}
	if r, ok := set.match(iss.cfg.Name, id, now); ok {
		return pdp.Denyf(pdp.ReasonTokenRevoked, "%s %q is revoked until %s", r.Kind, r.Value,
			r.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}
