package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/authgate/pdp/identity"
)

func init() {
	register("jwt", runJWTSuite)
}

// jwtVectorFile is the corpus file of io.jwt.decode_verify vectors.
type jwtVectorFile struct {
	Placeholders struct {
		Cert string          `json:"$CERT"`
		JWKS json.RawMessage `json:"$JWKS"`
	} `json:"placeholders"`
	Vectors   []jwtVector        `json:"vectors"`
	Generated []jwtGeneratedCase `json:"generated_token_cases"`
}

// jwtVector is one OPA vector: a token, the builtin's constraints and
// whether OPA accepts the token.
type jwtVector struct {
	File        string         `json:"file"`
	Note        string         `json:"note"`
	Token       string         `json:"token"`
	Constraints jwtConstraints `json:"constraints"`
	ExpectValid bool           `json:"expect_valid"`
}

// jwtConstraints are the io.jwt.decode_verify constraints. Time is in
// nanoseconds since the epoch and may be fractional.
type jwtConstraints struct {
	Cert   string      `json:"cert"`
	Secret string      `json:"secret"`
	Iss    string      `json:"iss"`
	Aud    string      `json:"aud"`
	Time   json.Number `json:"time"`
}

// jwtGeneratedCase describes a token by recipe instead of by value.
type jwtGeneratedCase struct {
	File        string         `json:"file"`
	Note        string         `json:"note"`
	Constraints jwtConstraints `json:"constraints"`
	ExpectValid bool           `json:"expect_valid"`
	ExpectError string         `json:"expect_error"`
}

// acceptanceSecret replaces HMAC secrets shorter than 32 bytes, which our
// verifier refuses to load (RFC 7518, section 3.2 requires at least the
// hash size). The vector's header and payload segments are kept byte for
// byte; only the signature is recomputed.
const acceptanceSecret = "acceptance-hs256-secret-32-bytes"

// generatedPayloads are the token recipes of the generated cases, copied
// from their token_recipe text: header {"alg":"HS256"} over these payloads.
var generatedPayloads = map[string]string{
	"missing-iss-while-required": `{}`,
	"invalid-exp":                `{"exp": null}`,
	"invalid-nbf":                `{"nbf": "string is not valid here"}`,
}

// jwtDifferences lists the vectors where our verifier and OPA's
// io.jwt.decode_verify legitimately disagree, with the reason. A listed
// vector whose outcome matches OPA fails, so the list stays accurate.
var jwtDifferences = map[string]string{
	"test-jwtdecodeverify-0476.yaml": "the token has no iss claim, which every issuer requires, and its " +
		"RSA key is published with use=enc, which we never use for signatures",
}

// runJWTSuite verifies every vector with an Authenticator configured from
// the vector's constraints, at the vector's time, and compares acceptance
// with OPA's result.
func runJWTSuite(corpus string, r *report) {
	data, err := os.ReadFile(filepath.Join(corpus, "jwt", "opa-decode-verify-vectors.json"))
	if err != nil {
		r.fail("setup", "%v", err)
		return
	}
	var file jwtVectorFile
	if err := json.Unmarshal(data, &file); err != nil {
		r.fail("setup", "parse vectors: %v", err)
		return
	}
	dir, err := os.MkdirTemp("", "pdp-acceptance-jwt-")
	if err != nil {
		r.fail("setup", "%v", err)
		return
	}
	defer os.RemoveAll(dir)

	run := jwtRun{dir: dir, cert: file.Placeholders.Cert, jwks: file.Placeholders.JWKS}
	differences := 0
	for _, v := range file.Vectors {
		differences += run.check(r, v)
	}
	for _, g := range file.Generated {
		payload, ok := generatedPayloads[g.Note]
		if !ok {
			r.fail(g.File, "no recipe for generated case %q", g.Note)
			continue
		}
		token := "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".AA"
		// OPA raises an error for a wrong claim type; a rejection is the
		// equivalent outcome for a verifier.
		differences += run.check(r, jwtVector{File: g.File, Note: g.Note, Token: token,
			Constraints: g.Constraints, ExpectValid: g.ExpectValid && g.ExpectError == ""})
	}
	fmt.Printf("jwt: %d cases, %d with an explained difference from OPA\n",
		len(file.Vectors)+len(file.Generated), differences)
}

// jwtRun holds what every vector of one run shares.
type jwtRun struct {
	dir  string
	cert string
	jwks json.RawMessage
}

// check runs one vector and returns 1 when it is an explained difference.
func (run jwtRun) check(r *report, v jwtVector) int {
	name := strings.TrimSuffix(strings.TrimPrefix(v.File, "test-jwtdecodeverify-"), ".yaml") + " " + v.Note
	token, resigned, err := run.token(v)
	if err != nil {
		r.fail(name, "%v", err)
		return 0
	}
	accepted, detail, err := run.verify(v, token)
	if err != nil {
		r.fail(name, "%v", err)
		return 0
	}
	if resigned {
		detail += "; re-signed with a 32-byte secret"
	}

	explanation, explained := jwtDifferences[v.File]
	switch {
	case accepted == v.ExpectValid && explained:
		r.fail(name, "listed as a difference (%s) but matches OPA (%s)", explanation, detail)
	case accepted == v.ExpectValid:
		r.pass(fmt.Sprintf("%s [%s]", name, detail))
	case explained:
		r.pass(fmt.Sprintf("%s [explained difference: %s; ours: %s]", name, explanation, detail))
		return 1
	default:
		r.fail(name, "OPA valid=%v, ours valid=%v (%s)", v.ExpectValid, accepted, detail)
	}
	return 0
}

// token returns the token to verify, re-signed when the vector's HMAC
// secret is below the minimum length.
func (run jwtRun) token(v jwtVector) (string, bool, error) {
	if v.Constraints.Secret == "" || len(v.Constraints.Secret) >= 32 {
		return v.Token, false, nil
	}
	last := strings.LastIndexByte(v.Token, '.')
	if last < 0 {
		return "", false, fmt.Errorf("token has no signature segment")
	}
	mac := hmac.New(sha256.New, []byte(acceptanceSecret))
	mac.Write([]byte(v.Token[:last]))
	return v.Token[:last] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), true, nil
}

// verify configures an Authenticator from the constraints and verifies
// token at the vector's time. detail is the outcome in words.
func (run jwtRun) verify(v jwtVector, token string) (bool, string, error) {
	cfg, err := run.issuerConfig(v, token)
	if err != nil {
		return false, "", err
	}
	now, err := vectorTime(v.Constraints.Time)
	if err != nil {
		return false, "", err
	}
	a, err := identity.New(identity.Config{Issuers: []identity.IssuerConfig{cfg}}, identity.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { return now },
	})
	if err != nil {
		return false, "", fmt.Errorf("configure verifier: %w", err)
	}
	if err := a.Start(context.Background()); err != nil {
		return false, "", err
	}
	defer a.Stop()

	id, err := a.VerifyToken(context.Background(), token, nil)
	if err != nil {
		return false, "rejected: " + err.Error(), nil
	}
	return true, "accepted, sub " + fmt.Sprintf("%q", id.Subject), nil
}

// issuerConfig maps the OPA constraints to an issuer. OPA checks iss only
// when constrained, so iss comes from the constraint or else from the
// token. aud is required only when constrained, and without a constraint a
// token that carries aud is rejected, as OPA does. No claim is required
// and leeway is zero.
func (run jwtRun) issuerConfig(v jwtVector, token string) (identity.IssuerConfig, error) {
	leeway := time.Duration(0)
	cfg := identity.IssuerConfig{
		Name:           "vector",
		Issuer:         v.Constraints.Iss,
		Leeway:         &leeway,
		RequiredClaims: []string{},
	}
	if cfg.Issuer == "" {
		cfg.Issuer = tokenIssuer(token)
	}
	if cfg.Issuer == "" {
		// The token has no iss; an issuer that no token names keeps the
		// configuration valid and makes the verifier reject it.
		cfg.Issuer = "https://no-issuer-in-token.invalid"
	}
	if v.Constraints.Aud != "" {
		cfg.Audiences = []string{v.Constraints.Aud}
	} else {
		cfg.AllowMissingAudience = true
	}

	switch {
	case v.Constraints.Secret != "":
		secret := v.Constraints.Secret
		if len(secret) < 32 {
			secret = acceptanceSecret
		}
		path := filepath.Join(run.dir, "secret-"+filepath.Base(v.File))
		if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
			return cfg, err
		}
		cfg.Keys = []identity.KeyConfig{{SecretFile: path}}
	case v.Constraints.Cert == "$CERT":
		path := filepath.Join(run.dir, "cert.pem")
		if err := os.WriteFile(path, []byte(run.cert), 0o600); err != nil {
			return cfg, err
		}
		// OPA accepts any algorithm that fits the key type.
		cfg.Keys = []identity.KeyConfig{{File: path,
			Algorithms: []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}}}
	case v.Constraints.Cert == "$JWKS":
		path := filepath.Join(run.dir, "jwks.json")
		if err := os.WriteFile(path, run.jwks, 0o600); err != nil {
			return cfg, err
		}
		cfg.Keys = []identity.KeyConfig{{File: path}}
	default:
		return cfg, fmt.Errorf("unsupported constraints %+v", v.Constraints)
	}
	return cfg, nil
}

// tokenIssuer returns the unverified iss claim, "" when absent.
func tokenIssuer(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	_ = json.Unmarshal(payload, &claims)
	return claims.Iss
}

// vectorTime converts the constraint time (nanoseconds, possibly
// fractional) to a time; no constraint means now.
func vectorTime(n json.Number) (time.Time, error) {
	if n == "" {
		return time.Now(), nil
	}
	r, ok := new(big.Rat).SetString(string(n))
	if !ok {
		return time.Time{}, fmt.Errorf("time constraint %q is not a number", n)
	}
	ns := new(big.Int).Quo(r.Num(), r.Denom())
	if !ns.IsInt64() {
		return time.Time{}, fmt.Errorf("time constraint %q is out of range", n)
	}
	return time.Unix(0, ns.Int64()), nil
}
