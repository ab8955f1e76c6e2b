package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strconv"
	"time"
)

// Test identities of the generated credentials. They name nothing outside
// this harness.
const (
	benchIssuer   = "https://issuer.bench.test"
	benchAudience = "pdp"
	benchKeyID    = "bench-es256"
	benchSender   = "billing"
)

// tokenSigner mints ES256 JWTs with a key generated for one harness run.
type tokenSigner struct {
	key *ecdsa.PrivateKey
}

func newTokenSigner() (*tokenSigner, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &tokenSigner{key: key}, nil
}

// publicKeyPEM returns the verification key as a PEM public key.
func (s *tokenSigner) publicKeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// token returns a JWT for subject, valid for an hour, with the reader role
// and tenant t-42 that the shipped policy allows on /tenants/t-42/.
func (s *tokenSigner) token(subject string) (string, error) {
	now := time.Now()
	header := map[string]any{"alg": "ES256", "typ": "JWT", "kid": benchKeyID}
	claims := map[string]any{
		"iss": benchIssuer, "aud": benchAudience, "sub": subject,
		"iat": now.Unix(), "nbf": now.Unix() - 1, "exp": now.Add(time.Hour).Unix(),
		"scope": "api:read", "roles": []string{"reader"}, "tenant": "t-42",
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	digest := sha256.Sum256([]byte(signingInput))
	r, sv, err := ecdsa.Sign(rand.Reader, s.key, digest[:])
	if err != nil {
		return "", err
	}
	// JWS ES256 signatures are R and S as two 32-byte big-endian integers
	// (RFC 7518, section 3.4), not ASN.1.
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:])
	return signingInput + "." + enc.EncodeToString(sig), nil
}

// tokenPool mints n tokens for distinct subjects, so the PDP's token
// cache holds more than one entry, as behind a real gateway.
func (s *tokenSigner) tokenPool(n int) ([]string, error) {
	pool := make([]string, n)
	for i := range pool {
		t, err := s.token(fmt.Sprintf("user-%04d", i))
		if err != nil {
			return nil, err
		}
		pool[i] = t
	}
	return pool, nil
}

// webhookSigner signs Standard Webhooks v1 (HMAC-SHA256) messages.
type webhookSigner struct {
	secret []byte
}

func newWebhookSigner() (*webhookSigner, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	return &webhookSigner{secret: secret}, nil
}

// configSecret returns the secret in the whsec_ form the PDP reads.
func (s *webhookSigner) configSecret() string {
	return "whsec_" + base64.StdEncoding.EncodeToString(s.secret)
}

// message returns the headers and raw body of message number seq. Each
// message has a fresh id, and its sequence number increases by one per
// message on each of channels channels, so concurrent delivery reorders a
// channel's messages by far less than the replay store's sequence window.
func (s *webhookSigner) message(seq uint64, channels int, now time.Time) (map[string]string, string) {
	channel := seq % uint64(channels)
	sequence := seq/uint64(channels) + 1
	id := "msg_bench_" + strconv.FormatUint(seq, 10) + "_" + strconv.FormatInt(now.UnixNano(), 36)
	body := fmt.Sprintf(`{"type":"payment.settled","sequence":%d,"channel":"ch-%d",`+
		`"correlation_id":"c-%d","scope":"payments:notify","tenant":"t-42",`+
		`"data":{"payment_id":"pay_%d","amount":1250,"currency":"EUR"}}`,
		sequence, channel, seq, seq)
	ts := strconv.FormatInt(now.Unix(), 10)

	mac := hmac.New(sha256.New, s.secret)
	mac.Write([]byte(id + "." + ts + "." + body))
	signature := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	headers := map[string]string{
		"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": signature,
		"webhook-sender": benchSender, "content-type": "application/json",
	}
	return headers, body
}
