package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting in token headers and claims.
const maxJSONDepth = 32

// b64 decodes JWS segments. Strict rejects non-zero trailing bits; padding
// and CR/LF, which the decoder would still skip, are rejected by
// checkSegmentAlphabet first.
var b64 = base64.RawURLEncoding.Strict()

// compactJWS is a token split into its segments, with the header and claims
// decoded but nothing verified.
type compactJWS struct {
	signingInput string
	signature    []byte
	header       map[string]any
	claims       map[string]any
}

// parseCompact splits and decodes a compact JWS. It rejects any byte outside
// the base64url alphabet, padding, non-zero trailing bits, invalid UTF-8 and
// duplicate JSON keys.
func parseCompact(token string) (*compactJWS, error) {
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	if first < 0 || first == last || strings.Count(token, ".") != 2 {
		return nil, errors.New("token is not a compact JWS with three segments")
	}
	segments := [3]string{token[:first], token[first+1 : last], token[last+1:]}
	for i, seg := range segments {
		if err := checkSegmentAlphabet(seg); err != nil {
			return nil, fmt.Errorf("segment %d: %w", i+1, err)
		}
	}

	headerJSON, err := b64.DecodeString(segments[0])
	if err != nil {
		return nil, fmt.Errorf("header: invalid base64url: %w", err)
	}
	claimsJSON, err := b64.DecodeString(segments[1])
	if err != nil {
		return nil, fmt.Errorf("claims: invalid base64url: %w", err)
	}
	signature, err := b64.DecodeString(segments[2])
	if err != nil {
		return nil, fmt.Errorf("signature: invalid base64url: %w", err)
	}
	if len(signature) == 0 {
		return nil, errors.New("signature is empty")
	}

	header, err := decodeObject(headerJSON)
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	claims, err := decodeObject(claimsJSON)
	if err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	return &compactJWS{
		signingInput: token[:last],
		signature:    signature,
		header:       header,
		claims:       claims,
	}, nil
}

// checkSegmentAlphabet rejects every byte outside the unpadded base64url
// alphabet (RFC 7515, section 2), which includes "=", CR, LF and spaces.
func checkSegmentAlphabet(seg string) error {
	if seg == "" {
		return errors.New("segment is empty")
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		ok := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return fmt.Errorf("byte 0x%02x at offset %d is not base64url", c, i)
		}
	}
	return nil
}

// decodeObject decodes a JSON object with numbers kept as json.Number. It
// rejects invalid UTF-8, duplicate keys at any depth, nesting deeper than
// maxJSONDepth and trailing data, so that the claims we check are the
// claims every other JSON parser would see.
//
// NOTE: json.Decoder.Token makes this the largest cost of an HS256
// verification (an estimate from one CPU profile); a byte scanner for
// duplicate keys would be faster.
func decodeObject(data []byte) (map[string]any, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	obj, err := decodeObjectBody(dec, 1)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	return obj, nil
}

func decodeObjectBody(dec *json.Decoder, depth int) (map[string]any, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("JSON nesting deeper than %d", maxJSONDepth)
	}
	obj := map[string]any{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("invalid JSON: object key is not a string")
		}
		if _, dup := obj[key]; dup {
			return nil, fmt.Errorf("duplicate JSON key %q", key)
		}
		value, err := decodeValue(dec, depth)
		if err != nil {
			return nil, err
		}
		obj[key] = value
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return obj, nil
}

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch tok {
	case json.Delim('{'):
		return decodeObjectBody(dec, depth+1)
	case json.Delim('['):
		if depth+1 > maxJSONDepth {
			return nil, fmt.Errorf("JSON nesting deeper than %d", maxJSONDepth)
		}
		list := []any{}
		for dec.More() {
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		return list, nil
	}
	return tok, nil
}

// header is the checked JOSE header of a token.
type header struct {
	alg string
	kid string
	typ string
}

// forbiddenHeaders name keys by reference or embed them. A verifier that
// honoured them would let the token choose its own key, so any token that
// carries one is rejected, even when it also has a kid we know.
var forbiddenHeaders = []string{"jku", "x5u", "jwk", "x5c"}

// checkHeader extracts alg, kid and typ and rejects headers this verifier
// does not implement: crit (RFC 7515, section 4.1.11: unknown critical
// extensions must be rejected, and we implement none), b64 (RFC 7797),
// key references, and nested JWTs.
func checkHeader(h map[string]any) (header, error) {
	var out header
	alg, ok := h["alg"].(string)
	if !ok {
		return out, errors.New("header alg is missing or not a string")
	}
	if strings.EqualFold(alg, "none") {
		return out, errors.New("alg none is never accepted")
	}
	out.alg = alg

	for _, name := range forbiddenHeaders {
		if _, present := h[name]; present {
			return out, fmt.Errorf("header %s is not accepted: keys are never taken from the token", name)
		}
	}
	if _, present := h["crit"]; present {
		return out, errors.New("header crit names extensions this verifier does not implement")
	}
	if _, present := h["b64"]; present {
		return out, errors.New("header b64 (unencoded payload) is not supported")
	}

	if v, present := h["kid"]; present {
		kid, ok := v.(string)
		if !ok {
			return out, errors.New("header kid is not a string")
		}
		if err := checkKeyID(kid); err != nil {
			return out, err
		}
		out.kid = kid
	}
	if v, present := h["typ"]; present {
		typ, ok := v.(string)
		if !ok {
			return out, errors.New("header typ is not a string")
		}
		out.typ = typ
	}
	if v, present := h["cty"]; present {
		cty, _ := v.(string)
		if strings.EqualFold(normalizeMediaType(cty), "jwt") {
			return out, errors.New("nested JWTs (cty JWT) are not supported")
		}
	}
	return out, nil
}

// checkKeyID rejects kid values that no key set of ours contains and that
// should not trigger a JWKS refresh: empty, too long, non-printable ASCII,
// backslashes and ".." path steps.
func checkKeyID(kid string) error {
	if kid == "" {
		return errors.New("header kid is empty")
	}
	if len(kid) > MaxKeyIDLength {
		return fmt.Errorf("header kid is longer than %d bytes", MaxKeyIDLength)
	}
	for i := 0; i < len(kid); i++ {
		if kid[i] < 0x21 || kid[i] > 0x7e || kid[i] == '\\' {
			return fmt.Errorf("header kid contains byte 0x%02x", kid[i])
		}
	}
	if strings.Contains(kid, "..") {
		return errors.New("header kid contains a path step (..)")
	}
	return nil
}

// normalizeMediaType drops the "application/" prefix that RFC 7515, section
// 4.1.9 allows producers to omit.
func normalizeMediaType(t string) string {
	if len(t) > len("application/") && strings.EqualFold(t[:len("application/")], "application/") {
		return t[len("application/"):]
	}
	return t
}

// checkType applies the issuer's typ allow-list. With no list, typ may be
// absent or JWT.
func checkType(typ string, allowed []string) error {
	if len(allowed) == 0 {
		if typ == "" || strings.EqualFold(normalizeMediaType(typ), "JWT") {
			return nil
		}
		return fmt.Errorf("typ %q is not accepted (expected JWT or none)", typ)
	}
	if typ == "" {
		return errors.New("typ is missing")
	}
	for _, a := range allowed {
		if strings.EqualFold(normalizeMediaType(typ), normalizeMediaType(a)) {
			return nil
		}
	}
	return fmt.Errorf("typ %q is not in the allowed types %v", typ, allowed)
}
