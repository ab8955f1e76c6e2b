package identity

import (
	"errors"
	"fmt"
	"strings"

	"github.com/authgate/pdp/pdp"
)

// TokenFromHeaders returns the bearer token from headers (lower-case
// names). For the authorization header (also when header is empty) the
// value must be "Bearer <token>": the scheme is matched case-insensitively
// (RFC 7235, section 2.1) and the token must use the b64token characters of
// RFC 6750, section 2.1. Any other header carries the bare token. A missing
// header returns "" and no error; a malformed value returns a
// pdp.ReasonError with token.invalid.
func TokenFromHeaders(headers map[string]string, header string) (string, error) {
	if header == "" {
		header = DefaultTokenHeader
	}
	header = strings.ToLower(header)
	value, ok := headers[header]
	if !ok || value == "" {
		return "", nil
	}
	if header != DefaultTokenHeader {
		token := strings.TrimSpace(value)
		if err := checkB64Token(token); err != nil {
			return "", pdp.Deny(pdp.ReasonTokenInvalid, fmt.Errorf("header %s: %w", header, err))
		}
		return token, nil
	}

	scheme, token, found := strings.Cut(value, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", pdp.Deny(pdp.ReasonTokenInvalid, errors.New("authorization header does not use the Bearer scheme"))
	}
	token = strings.TrimLeft(token, " ")
	if err := checkB64Token(token); err != nil {
		return "", pdp.Deny(pdp.ReasonTokenInvalid, fmt.Errorf("authorization header: %w", err))
	}
	return token, nil
}

// checkB64Token accepts 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" /
// "/" ) *"=", which rejects commas (several joined headers), spaces and
// control characters.
func checkB64Token(token string) error {
	if token == "" {
		return errors.New("token is empty")
	}
	body := strings.TrimRight(token, "=")
	if body == "" {
		return errors.New("token is only padding")
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		ok := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-._~+/", c) >= 0
		if !ok {
			return fmt.Errorf("token contains byte 0x%02x at offset %d", c, i)
		}
	}
	return nil
}
