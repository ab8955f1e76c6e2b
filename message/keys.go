package message

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Signature versions of the Standard Webhooks signature header.
const (
	versionHMAC    = "v1"
	versionEd25519 = "v1a"
)

// maxSignatureEntries bounds the entries read from one signature header;
// a header with more is denied, so a forger cannot make the verifier loop.
const maxSignatureEntries = 16

// verifyKey is a decoded Key.
type verifyKey struct {
	id        string
	secret    []byte            // v1, nil for Ed25519 keys
	public    ed25519.PublicKey // v1a, nil for HMAC keys
	notBefore time.Time
	notAfter  time.Time
}

func parseKey(k Key) (verifyKey, error) {
	vk := verifyKey{id: k.ID, notBefore: k.NotBefore, notAfter: k.NotAfter}
	switch {
	case k.Secret != "" && k.PublicKey != "":
		return vk, errors.New("set only one of secret and public_key")
	case k.PublicKey != "":
		b, err := decodeBase64(k.PublicKey, "whpk_")
		if err != nil {
			return vk, fmt.Errorf("public_key: not valid base64: %w", err)
		}
		if len(b) != ed25519.PublicKeySize {
			return vk, fmt.Errorf("public_key: Ed25519 keys are %d bytes, got %d", ed25519.PublicKeySize, len(b))
		}
		vk.public = ed25519.PublicKey(b)
	default:
		// A secret of "" or "whsec_" is the classic misconfiguration that
		// would make every HMAC trivially forgeable with an empty key.
		if strings.TrimPrefix(strings.TrimSpace(k.Secret), "whsec_") == "" {
			return vk, errors.New("secret: is empty; set a base64 secret (optionally whsec_-prefixed)")
		}
		b, err := decodeBase64(k.Secret, "whsec_")
		if err != nil {
			return vk, fmt.Errorf("secret: not valid base64: %w", err)
		}
		if len(b) < MinSecretBytes {
			return vk, fmt.Errorf("secret: decodes to %d bytes, want at least %d", len(b), MinSecretBytes)
		}
		vk.secret = b
	}
	if !k.NotBefore.IsZero() && !k.NotAfter.IsZero() && !k.NotAfter.After(k.NotBefore) {
		return vk, errors.New("not_after: must be later than not_before")
	}
	return vk, nil
}

// activeAt reports whether the key may verify a message stamped ts.
func (k *verifyKey) activeAt(ts time.Time) bool {
	if !k.notBefore.IsZero() && ts.Before(k.notBefore) {
		return false
	}
	return k.notAfter.IsZero() || ts.Before(k.notAfter)
}

// signatureEntry is one "version,signature" entry of a signature header.
type signatureEntry struct {
	version string
	sig     []byte
}

// parseSignatures splits a signature header. Entries that are not
// "version,base64" are skipped, as reference implementations do.
func parseSignatures(header string) ([]signatureEntry, error) {
	fields := strings.Fields(header)
	if len(fields) > maxSignatureEntries {
		return nil, fmt.Errorf("signature header has %d entries, at most %d are accepted", len(fields), maxSignatureEntries)
	}
	entries := make([]signatureEntry, 0, len(fields))
	for _, f := range fields {
		version, encoded, ok := strings.Cut(f, ",")
		if !ok || (version != versionHMAC && version != versionEd25519) {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || len(sig) == 0 {
			continue
		}
		entries = append(entries, signatureEntry{version: version, sig: sig})
	}
	return entries, nil
}

// verify reports whether any entry is a valid signature of content by k.
// HMAC results are compared in constant time.
func (k *verifyKey) verify(content []byte, entries []signatureEntry) bool {
	var mac []byte
	for _, e := range entries {
		switch {
		case k.secret != nil && e.version == versionHMAC:
			if mac == nil {
				h := hmac.New(sha256.New, k.secret)
				h.Write(content)
				mac = h.Sum(nil)
			}
			if hmac.Equal(mac, e.sig) {
				return true
			}
		case k.public != nil && e.version == versionEd25519:
			if len(e.sig) == ed25519.SignatureSize && ed25519.Verify(k.public, content, e.sig) {
				return true
			}
		}
	}
	return false
}
