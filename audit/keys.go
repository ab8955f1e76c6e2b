package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// PublicKeySuffix is appended to the key file name to name the file the
// public key is written to when a key is generated.
const PublicKeySuffix = ".pub"

// KeyID returns the identifier of a checkpoint key: the first 8 bytes of
// the SHA-256 of the public key, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// loadSigningKey reads the checkpoint key at path, generating it first when
// it is missing and generate is set.
func loadSigningKey(path string, generate bool, log *slog.Logger) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && generate {
		return generateSigningKey(path, log)
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint key: %w", err)
	}
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		log.Warn("audit checkpoint key file is readable by group or others",
			"path", path, "mode", info.Mode().Perm().String())
	}
	key, err := parseSigningKey(data)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key %s: %w", path, err)
	}
	return key, nil
}

// parseSigningKey accepts a PEM PKCS#8 Ed25519 key, a raw 32-byte seed or
// the seed as 64 hex digits.
func parseSigningKey(data []byte) (ed25519.PrivateKey, error) {
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("PEM block is %q, want \"PRIVATE KEY\" (PKCS#8)", block.Type)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKCS#8 key: %w", err)
		}
		key, ok := parsed.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("key is %T, want Ed25519", parsed)
		}
		return key, nil
	}
	if len(data) == ed25519.SeedSize {
		return ed25519.NewKeyFromSeed(data), nil
	}
	if seed, err := hex.DecodeString(string(bytes.TrimSpace(data))); err == nil && len(seed) == ed25519.SeedSize {
		return ed25519.NewKeyFromSeed(seed), nil
	}
	return nil, errors.New("not a PEM PKCS#8 Ed25519 key, a 32-byte seed or 64 hex digits")
}

// generateSigningKey creates a key, stores it at path with mode 0600 and
// its public key beside it.
func generateSigningKey(path string, log *slog.Logger) (ed25519.PrivateKey, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate checkpoint key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create checkpoint key directory: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeSynced(path, keyPEM, os.O_EXCL, 0o600); err != nil {
		return nil, fmt.Errorf("store checkpoint key: %w", err)
	}
	pubPEM, err := MarshalPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if err := writeSynced(path+PublicKeySuffix, pubPEM, os.O_EXCL, 0o644); err != nil {
		return nil, fmt.Errorf("store checkpoint public key: %w", err)
	}
	log.Info("audit checkpoint key generated", "path", path,
		"public_key_path", path+PublicKeySuffix, "key_id", KeyID(pub))
	return key, nil
}

// writeSynced writes data to path, created with perm when missing, and
// syncs it to disk. flag adds os.O_EXCL (fail if it exists) or os.O_TRUNC.
func writeSynced(path string, data []byte, flag int, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// MarshalPublicKey encodes pub as a PEM "PUBLIC KEY" block (PKIX).
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKey reads a checkpoint verification key: a PEM "PUBLIC KEY"
// block (PKIX), a raw 32-byte key, or the key in base64 or hex.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\"", block.Type)
		}
		parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		pub, ok := parsed.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T, want Ed25519", parsed)
		}
		return pub, nil
	}
	if len(data) == ed25519.PublicKeySize {
		return ed25519.PublicKey(data), nil
	}
	text := string(bytes.TrimSpace(data))
	if raw, err := hex.DecodeString(text); err == nil && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	if raw, err := base64.StdEncoding.DecodeString(text); err == nil && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	return nil, errors.New("not a PEM Ed25519 public key or 32 raw, hex or base64 bytes")
}

// LoadPublicKey reads a verification key file in a format ParsePublicKey
// accepts.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	pub, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return pub, nil
}
