package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/authgate/pdp/pdp"
)

// adminErrorBody is the JSON body of a rejected admin request.
type adminErrorBody struct {
	Reason  pdp.Reason `json:"reason"`
	Message string     `json:"message"`
}

// RequireAdminToken returns middleware that admits only requests carrying
// "Authorization: Bearer <token>". Others get 401 with reason token.missing
// (no bearer token) or token.invalid (any other token). An empty token
// rejects every request, so a missing admin secret never opens the
// endpoints.
func RequireAdminToken(token string) echo.MiddlewareFunc {
	want := sha256.Sum256([]byte(token))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			got, ok := adminBearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
			if !ok {
				return c.JSON(http.StatusUnauthorized, adminErrorBody{
					Reason: pdp.ReasonTokenMissing, Message: pdp.ReasonTokenMissing.Text()})
			}
			// Comparing fixed-size digests in constant time reveals neither the
			// token's bytes nor its length through timing.
			digest := sha256.Sum256([]byte(got))
			if token == "" || subtle.ConstantTimeCompare(digest[:], want[:]) != 1 {
				return c.JSON(http.StatusUnauthorized, adminErrorBody{
					Reason: pdp.ReasonTokenInvalid, Message: pdp.ReasonTokenInvalid.Text()})
			}
			return next(c)
		}
	}
}

// adminBearerToken returns the credential of a "Bearer" Authorization value;
// the scheme is case-insensitive (RFC 7235, section 2.1).
func adminBearerToken(value string) (string, bool) {
	scheme, token, found := strings.Cut(value, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
