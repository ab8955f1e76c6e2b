package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"
)

// minRSABits is the smallest RSA modulus accepted for verification.
const minRSABits = 2048

// verificationKey is one key with the algorithms it may verify. public is
// *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte (an HMAC
// secret); the type decides which algorithms can ever use it.
type verificationKey struct {
	id         string
	algorithms []string
	public     any
	// fingerprint identifies the key material and algorithms, so that a
	// refreshed key set can be compared with the previous one.
	fingerprint string
}

// allows reports whether the key may verify alg: alg is on the key's list
// and matches its type.
func (k *verificationKey) allows(alg string) bool {
	return slices.Contains(k.algorithms, alg) && algorithmFits(alg, k.public) == nil
}

// algorithmFits checks that alg can be used with the key type. An HMAC
// secret never verifies an RS, PS, ES or EdDSA token and the reverse. An
// ES algorithm needs the curve it is defined for (RFC 7518, section 3.4).
func algorithmFits(alg string, key any) error {
	switch k := key.(type) {
	case []byte:
		if !isHMAC(alg) {
			return fmt.Errorf("algorithm %s cannot use an HMAC secret", alg)
		}
		if min := hmacMinLength(alg); len(k) < min {
			return fmt.Errorf("HMAC secret is %d bytes, %s needs at least %d", len(k), alg, min)
		}
	case *rsa.PublicKey:
		if !strings.HasPrefix(alg, "RS") && !strings.HasPrefix(alg, "PS") {
			return fmt.Errorf("algorithm %s cannot use an RSA key", alg)
		}
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key has %d bits, at least %d are required", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		if want == nil || k.Curve != want {
			return fmt.Errorf("algorithm %s cannot use an EC key on curve %s", alg, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return fmt.Errorf("algorithm %s cannot use an Ed25519 key", alg)
		}
	default:
		return fmt.Errorf("unsupported key type %T", key)
	}
	return nil
}

// hmacMinLength is the minimum secret length for alg: the hash output size
// (RFC 7518, section 3.2).
func hmacMinLength(alg string) int {
	switch alg {
	case "HS384":
		return 48
	case "HS512":
		return 64
	}
	return 32
}

// defaultAlgorithms are the algorithms a key verifies when neither the
// configuration nor the JWK names any.
func defaultAlgorithms(key any) []string {
	switch k := key.(type) {
	case []byte:
		return []string{"HS256"}
	case *rsa.PublicKey:
		return []string{"RS256"}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}
		case elliptic.P384():
			return []string{"ES384"}
		case elliptic.P521():
			return []string{"ES512"}
		}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	}
	return nil
}

// newKey checks key against every algorithm and fills in the fingerprint.
func newKey(id string, algorithms []string, key any) (*verificationKey, error) {
	if len(algorithms) == 0 {
		algorithms = defaultAlgorithms(key)
	}
	if len(algorithms) == 0 {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	for _, alg := range algorithms {
		if !slices.Contains(supportedAlgorithms, alg) {
			return nil, fmt.Errorf("unsupported algorithm %q", alg)
		}
		if err := algorithmFits(alg, key); err != nil {
			return nil, err
		}
	}
	material, err := keyMaterial(key)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append(material, []byte(id+"\x00"+strings.Join(algorithms, ","))...))
	return &verificationKey{
		id:          id,
		algorithms:  slices.Clone(algorithms),
		public:      key,
		fingerprint: hex.EncodeToString(sum[:]),
	}, nil
}

func keyMaterial(key any) ([]byte, error) {
	if secret, ok := key.([]byte); ok {
		return slices.Clone(secret), nil
	}
	return x509.MarshalPKIXPublicKey(key)
}

// loadStaticKeys reads the keys of one issuer from files and secrets.
func loadStaticKeys(cfgs []KeyConfig) ([]*verificationKey, error) {
	var keys []*verificationKey
	var errs []error
	for i, kc := range cfgs {
		loaded, err := loadStaticKey(kc)
		if err != nil {
			errs = append(errs, fmt.Errorf("keys[%d]: %w", i, err))
			continue
		}
		keys = append(keys, loaded...)
	}
	return keys, errors.Join(errs...)
}

func loadStaticKey(kc KeyConfig) ([]*verificationKey, error) {
	switch {
	case kc.SecretEnv != "":
		secret, ok := os.LookupEnv(kc.SecretEnv)
		if !ok || secret == "" {
			return nil, fmt.Errorf("environment variable %s is not set", kc.SecretEnv)
		}
		k, err := newKey(kc.ID, kc.Algorithms, []byte(secret))
		if err != nil {
			return nil, fmt.Errorf("secret from %s: %w", kc.SecretEnv, err)
		}
		return []*verificationKey{k}, nil
	case kc.SecretFile != "":
		data, err := os.ReadFile(kc.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("read secret: %w", err)
		}
		secret := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
		k, err := newKey(kc.ID, kc.Algorithms, []byte(secret))
		if err != nil {
			return nil, fmt.Errorf("secret from %s: %w", kc.SecretFile, err)
		}
		return []*verificationKey{k}, nil
	}
	data, err := os.ReadFile(kc.File)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	keys, err := parseKeys(data, kc.ID, kc.Algorithms)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", kc.File, err)
	}
	return keys, nil
}

// parseKeys parses public verification keys from a PEM file (PUBLIC KEY,
// RSA PUBLIC KEY or CERTIFICATE blocks), a JWK or a JWKS. id sets the kid
// of PEM keys and overrides the kid of a single JWK; it must be empty for a
// JWKS. algorithms, when set, replaces each key's alg. Private keys are
// rejected. The validity period of a certificate is not checked: it only
// carries the key.
func parseKeys(data []byte, id string, algorithms []string) ([]*verificationKey, error) {
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "{") {
		return parseJWKFile([]byte(trimmed), id, algorithms)
	}
	return parsePEMKeys([]byte(trimmed), id, algorithms)
}

func parsePEMKeys(data []byte, id string, algorithms []string) ([]*verificationKey, error) {
	var keys []*verificationKey
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		pub, err := pemPublicKey(block)
		if err != nil {
			return nil, err
		}
		k, err := newKey(id, algorithms, pub)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("data after the last PEM block is not PEM")
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block, JWK or JWKS found")
	}
	return keys, nil
}

func pemPublicKey(block *pem.Block) (any, error) {
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	if strings.Contains(block.Type, "PRIVATE KEY") {
		return nil, errors.New("the file contains a private key: configure the public key instead")
	}
	return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
}

func parseJWKFile(data []byte, id string, algorithms []string) ([]*verificationKey, error) {
	obj, err := decodeObject(data)
	if err != nil {
		return nil, err
	}
	if _, ok := obj["keys"]; ok {
		if id != "" {
			return nil, errors.New("id must be empty for a JWKS file: its keys carry their own kid")
		}
		keys, skipped, err := parseJWKS(obj, true)
		if err != nil {
			return nil, err
		}
		for _, err := range skipped {
			if !errors.Is(err, errNotForSignatures) {
				return nil, err
			}
		}
		if len(keys) == 0 {
			return nil, errors.New("JWKS contains no signature verification key")
		}
		return withAlgorithms(keys, algorithms)
	}
	k, err := parseJWK(obj, true)
	if err != nil {
		return nil, err
	}
	if id != "" {
		k.id = id
	}
	return withAlgorithms([]*verificationKey{k}, algorithms)
}

// withAlgorithms replaces the algorithms of each key when the configuration
// lists some, and recomputes the fingerprint.
func withAlgorithms(keys []*verificationKey, algorithms []string) ([]*verificationKey, error) {
	if len(algorithms) == 0 {
		return keys, nil
	}
	out := make([]*verificationKey, 0, len(keys))
	for _, k := range keys {
		nk, err := newKey(k.id, algorithms, k.public)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.id, err)
		}
		out = append(out, nk)
	}
	return out, nil
}

// parseJWKS parses a JWK Set. Keys that cannot be used are returned as
// skipped errors so that one unusable key does not drop the whole set.
func parseJWKS(obj map[string]any, allowSecrets bool) ([]*verificationKey, []error, error) {
	list, ok := obj["keys"].([]any)
	if !ok {
		return nil, nil, errors.New("JWKS keys is not an array")
	}
	if len(list) > MaxJWKSKeys {
		return nil, nil, fmt.Errorf("JWKS has %d keys, at most %d are accepted", len(list), MaxJWKSKeys)
	}
	var keys []*verificationKey
	var skipped []error
	for i, item := range list {
		jwk, ok := item.(map[string]any)
		if !ok {
			skipped = append(skipped, fmt.Errorf("keys[%d] is not an object", i))
			continue
		}
		k, err := parseJWK(jwk, allowSecrets)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("keys[%d]: %w", i, err))
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped, nil
}

// errNotForSignatures marks a JWK published for another purpose (use enc,
// or key_ops without verify). Such keys are skipped, not reported.
var errNotForSignatures = errors.New("key is not for signature verification")

// privateMembers are JWK members that only private or symmetric keys have.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth"}

// parseJWK parses one public JWK (RFC 7517, RFC 7518 section 6, RFC 8037).
// A key whose use is not "sig" or whose key_ops lacks "verify" is rejected:
// it was published for another purpose. Symmetric (oct) keys are accepted
// only from local files.
func parseJWK(jwk map[string]any, allowSecrets bool) (*verificationKey, error) {
	kty, _ := jwk["kty"].(string)
	kid, _ := jwk["kid"].(string)
	if use, ok := jwk["use"]; ok && use != "sig" {
		return nil, fmt.Errorf("key %q has use %v: %w", kid, use, errNotForSignatures)
	}
	if ops, ok := jwk["key_ops"]; ok {
		list, _ := ops.([]any)
		if !slices.Contains(list, any("verify")) {
			return nil, fmt.Errorf("key %q has key_ops without verify: %w", kid, errNotForSignatures)
		}
	}
	if kty != "oct" {
		for _, m := range privateMembers {
			if _, ok := jwk[m]; ok {
				return nil, fmt.Errorf("key %q contains private key material (%s)", kid, m)
			}
		}
	}

	pub, err := jwkPublicKey(kty, jwk, allowSecrets)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", kid, err)
	}
	var algorithms []string
	if alg, ok := jwk["alg"].(string); ok {
		algorithms = []string{alg}
	}
	k, err := newKey(kid, algorithms, pub)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", kid, err)
	}
	return k, nil
}

func jwkPublicKey(kty string, jwk map[string]any, allowSecrets bool) (any, error) {
	switch kty {
	case "RSA":
		n, err := jwkBytes(jwk, "n")
		if err != nil {
			return nil, err
		}
		e, err := jwkBytes(jwk, "e")
		if err != nil {
			return nil, err
		}
		if len(e) > 4 {
			return nil, errors.New("RSA exponent is too large")
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		if exp < 3 || exp%2 == 0 {
			return nil, fmt.Errorf("RSA exponent %d is invalid", exp)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
	case "EC":
		return jwkECKey(jwk)
	case "OKP":
		crv, _ := jwk["crv"].(string)
		if crv != "Ed25519" {
			return nil, fmt.Errorf("OKP curve %q is not supported", crv)
		}
		x, err := jwkBytes(jwk, "x")
		if err != nil {
			return nil, err
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 key is %d bytes, expected %d", len(x), ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(x), nil
	case "oct":
		if !allowSecrets {
			return nil, errors.New("symmetric keys are not accepted from a remote JWKS")
		}
		return jwkBytes(jwk, "k")
	}
	return nil, fmt.Errorf("kty %q is not supported", kty)
}

func jwkECKey(jwk map[string]any) (any, error) {
	crv, _ := jwk["crv"].(string)
	curve := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[crv]
	if curve == nil {
		return nil, fmt.Errorf("EC curve %q is not supported", crv)
	}
	size := (curve.Params().BitSize + 7) / 8
	x, err := jwkBytes(jwk, "x")
	if err != nil {
		return nil, err
	}
	y, err := jwkBytes(jwk, "y")
	if err != nil {
		return nil, err
	}
	// RFC 7518, section 6.2.1.2: coordinates are the full curve size.
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("EC coordinates must be %d bytes", size)
	}
	point := append([]byte{4}, append(x, y...)...)
	// ParseUncompressedPublicKey rejects points that are not on the curve.
	return ecdsa.ParseUncompressedPublicKey(curve, point)
}

func jwkBytes(jwk map[string]any, name string) ([]byte, error) {
	s, ok := jwk[name].(string)
	if !ok || s == "" {
		return nil, fmt.Errorf("member %s is missing or not a string", name)
	}
	if err := checkSegmentAlphabet(s); err != nil {
		return nil, fmt.Errorf("member %s: %w", name, err)
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", name, err)
	}
	return b, nil
}
