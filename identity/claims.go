package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/authgate/pdp/pdp"
)

// claims are the registered claims of a token, each checked for its JSON
// type: a claim of the wrong type is an invalid token, never "absent".
type claims struct {
	issuer    string
	subject   string
	audience  []string
	hasAud    bool
	expiresAt time.Time
	hasExp    bool
	notBefore time.Time
	hasNbf    bool
	issuedAt  time.Time
	hasIat    bool
	tokenID   string
	raw       map[string]any
}

// parseClaims reads the registered claims from raw with strict types: iss,
// sub and jti are strings, aud is a string or a non-empty array of strings,
// and exp, nbf and iat are JSON numbers (a numeric string is rejected).
func parseClaims(raw map[string]any) (*claims, error) {
	c := &claims{raw: raw}
	var err error
	if c.issuer, err = stringClaim(raw, "iss"); err != nil {
		return nil, err
	}
	if c.subject, err = stringClaim(raw, "sub"); err != nil {
		return nil, err
	}
	if c.tokenID, err = stringClaim(raw, "jti"); err != nil {
		return nil, err
	}
	if c.audience, c.hasAud, err = audienceClaim(raw); err != nil {
		return nil, err
	}
	if c.expiresAt, c.hasExp, err = dateClaim(raw, "exp"); err != nil {
		return nil, err
	}
	if c.notBefore, c.hasNbf, err = dateClaim(raw, "nbf"); err != nil {
		return nil, err
	}
	if c.issuedAt, c.hasIat, err = dateClaim(raw, "iat"); err != nil {
		return nil, err
	}
	return c, nil
}

func stringClaim(raw map[string]any, name string) (string, error) {
	v, ok := raw[name]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("claim %s is not a string", name)
	}
	return s, nil
}

func audienceClaim(raw map[string]any) ([]string, bool, error) {
	v, ok := raw["aud"]
	if !ok {
		return nil, false, nil
	}
	switch aud := v.(type) {
	case string:
		return []string{aud}, true, nil
	case []any:
		if len(aud) == 0 {
			return nil, false, errors.New("claim aud is an empty array")
		}
		out := make([]string, 0, len(aud))
		for _, item := range aud {
			s, ok := item.(string)
			if !ok {
				return nil, false, errors.New("claim aud contains a value that is not a string")
			}
			out = append(out, s)
		}
		return out, true, nil
	}
	return nil, false, errors.New("claim aud is neither a string nor an array of strings")
}

// numericDate matches a JSON number whose exponent, if any, has at most two
// digits, so that converting it cannot allocate without bound.
var numericDate = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?([eE][+-]?[0-9]{1,2})?$`)

// dateClaim reads a NumericDate (RFC 7519, section 2): seconds since the
// epoch, possibly fractional. Fractions are kept to the nanosecond and
// converted exactly, without a float64 rounding step.
func dateClaim(raw map[string]any, name string) (time.Time, bool, error) {
	v, ok := raw[name]
	if !ok {
		return time.Time{}, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false, fmt.Errorf("claim %s is not a number", name)
	}
	s := string(n)

	// Integer seconds, the common case, need no rational arithmetic.
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		if secs > maxUnixSeconds || secs < -maxUnixSeconds {
			return time.Time{}, false, fmt.Errorf("claim %s is out of range", name)
		}
		return time.Unix(secs, 0).UTC(), true, nil
	}
	if !numericDate.MatchString(s) {
		return time.Time{}, false, fmt.Errorf("claim %s is not a usable NumericDate", name)
	}

	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return time.Time{}, false, fmt.Errorf("claim %s is not a usable NumericDate", name)
	}
	nanos := new(big.Rat).Mul(r, big.NewRat(int64(time.Second), 1))
	// Floor division keeps the conversion exact for negative values too.
	ns := new(big.Int).Div(nanos.Num(), nanos.Denom())
	secs, rem := new(big.Int).DivMod(ns, big.NewInt(int64(time.Second)), new(big.Int))
	if !secs.IsInt64() || secs.Int64() > maxUnixSeconds || secs.Int64() < -maxUnixSeconds {
		return time.Time{}, false, fmt.Errorf("claim %s is out of range", name)
	}
	return time.Unix(secs.Int64(), rem.Int64()).UTC(), true, nil
}

// maxUnixSeconds keeps NumericDates within year 10000.
const maxUnixSeconds = 253402300799

// validateClaims checks issuer, audience, required claims and the time
// window against iss. exp in the past returns token.expired; every other
// failure is token.invalid.
func validateClaims(c *claims, iss *issuer, now time.Time) error {
	cfg := iss.cfg
	if c.issuer != cfg.Issuer {
		return pdp.Denyf(pdp.ReasonTokenInvalid, "iss %q does not match issuer %q", c.issuer, cfg.Name)
	}
	if err := checkAudience(c, cfg); err != nil {
		return pdp.Deny(pdp.ReasonTokenInvalid, err)
	}
	for _, name := range cfg.RequiredClaims {
		if _, ok := c.raw[name]; !ok {
			return pdp.Denyf(pdp.ReasonTokenInvalid, "required claim %s is missing", name)
		}
	}

	leeway := *cfg.Leeway
	if c.hasExp && !now.Before(c.expiresAt.Add(leeway)) {
		return pdp.Denyf(pdp.ReasonTokenExpired, "token expired at %s", c.expiresAt.Format(time.RFC3339Nano))
	}
	if c.hasNbf && now.Add(leeway).Before(c.notBefore) {
		return pdp.Denyf(pdp.ReasonTokenInvalid, "token is not valid before %s", c.notBefore.Format(time.RFC3339Nano))
	}
	if c.hasIat && now.Add(leeway).Before(c.issuedAt) {
		return pdp.Denyf(pdp.ReasonTokenInvalid, "token is issued in the future (%s)", c.issuedAt.Format(time.RFC3339Nano))
	}
	return nil
}

func checkAudience(c *claims, cfg *IssuerConfig) error {
	if !c.hasAud {
		if cfg.AllowMissingAudience {
			return nil
		}
		return errors.New("claim aud is missing")
	}
	for _, a := range c.audience {
		if slices.Contains(cfg.Audiences, a) {
			return nil
		}
	}
	return fmt.Errorf("aud %q names none of the configured audiences", c.audience)
}

// scopes collects the scopes from every configured scope claim: a string
// is split on spaces (RFC 8693 scope), an array must hold strings (scp).
func scopes(raw map[string]any, names []string) ([]string, error) {
	var out []string
	for _, name := range names {
		v, ok := raw[name]
		if !ok {
			continue
		}
		switch s := v.(type) {
		case string:
			out = append(out, strings.Fields(s)...)
		case []any:
			for _, item := range s {
				str, ok := item.(string)
				if !ok {
					return nil, fmt.Errorf("claim %s contains a value that is not a string", name)
				}
				out = append(out, str)
			}
		default:
			return nil, fmt.Errorf("claim %s is neither a string nor an array of strings", name)
		}
	}
	return out, nil
}

// buildIdentity turns verified claims into the identity given to policies.
func buildIdentity(c *claims, iss *issuer, kid string) (*pdp.Identity, error) {
	scope, err := scopes(c.raw, iss.cfg.ScopeClaims)
	if err != nil {
		return nil, pdp.Deny(pdp.ReasonTokenInvalid, err)
	}
	var tenant string
	if iss.cfg.TenantClaim != "" {
		if tenant, err = stringClaim(c.raw, iss.cfg.TenantClaim); err != nil {
			return nil, pdp.Deny(pdp.ReasonTokenInvalid, err)
		}
	}
	id := &pdp.Identity{
		Verified: true,
		Method:   "jwt",
		Issuer:   c.issuer,
		Subject:  c.subject,
		Audience: c.audience,
		Scopes:   scope,
		Tenant:   tenant,
		KeyID:    kid,
		TokenID:  c.tokenID,
		Claims:   plainJSON(c.raw).(map[string]any),
	}
	if c.hasExp {
		id.ExpiresAt = c.expiresAt.Unix()
	}
	return id, nil
}

// plainJSON converts json.Number values to int64 when exact and float64
// otherwise, so that policies see ordinary JSON numbers.
func plainJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			out[k] = plainJSON(item)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = plainJSON(item)
		}
		return out
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}
