package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/authgate/pdp/identity"
	"github.com/authgate/pdp/pdp"
)

// maxRevocationTTL caps the lifetime of one revocation, so that the shared
// list cannot grow without bound from forgotten entries.
const maxRevocationTTL = 366 * 24 * time.Hour

// maxRevocationBodyBytes caps the body of a revocation request. A
// revocation is a few short strings, so 64 KiB leaves ample room.
const maxRevocationBodyBytes = 64 << 10

// Revoker stores and lists credential revocations; *identity.Authenticator
// implements it.
type Revoker interface {
	// AddRevocation stores r and returns it as stored, with CreatedAt set.
	// An error that wraps identity.ErrInvalidRevocation means r is invalid.
	AddRevocation(ctx context.Context, r identity.Revocation) (identity.Revocation, error)
	Revocations(ctx context.Context) ([]identity.Revocation, error)
}

var _ Revoker = (*identity.Authenticator)(nil)

// revocationRequest is the body of POST /v1/admin/revocations. Exactly one
// of expires_at (RFC 3339) and ttl (a Go duration such as "15m") is set.
type revocationRequest struct {
	Kind      identity.RevocationKind `json:"kind"`
	Value     string                  `json:"value"`
	Issuer    string                  `json:"issuer"`
	ExpiresAt *time.Time              `json:"expires_at"`
	TTL       string                  `json:"ttl"`
}

// revocationList is the body of GET /v1/admin/revocations.
type revocationList struct {
	Revocations []identity.Revocation `json:"revocations"`
}

// RegisterRevocation adds the revocation admin endpoints to g, which the
// admin listener mounts at /v1/admin:
//
//	GET  /revocations  lists unexpired revocations
//	POST /revocations  revokes by jti, subject or key_id until expires_at
//
// The caller protects g, for example with RequireAdminToken.
func RegisterRevocation(g *echo.Group, r Revoker) {
	h := &revocationHandler{revoker: r}
	g.GET("/revocations", h.list)
	g.POST("/revocations", h.create)
}

type revocationHandler struct {
	revoker Revoker
}

func (h *revocationHandler) list(c echo.Context) error {
	list, err := h.revoker.Revocations(c.Request().Context())
	if err != nil {
		slog.Error("revocation list failed", "error", err)
		return adminError(c, http.StatusServiceUnavailable, pdp.ReasonStateUnavailable,
			"the revocation list is unavailable")
	}
	return c.JSON(http.StatusOK, revocationList{Revocations: list})
}

func (h *revocationHandler) create(c echo.Context) error {
	req, err := readRevocationRequest(c)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return adminError(c, http.StatusRequestEntityTooLarge, pdp.ReasonRequestTooLarge,
			fmt.Sprintf("the body exceeds %d bytes", maxRevocationBodyBytes))
	case err != nil:
		return adminError(c, http.StatusBadRequest, pdp.ReasonRequestInvalid, err.Error())
	}
	rev, err := req.revocation(time.Now())
	if err != nil {
		return adminError(c, http.StatusBadRequest, pdp.ReasonRequestInvalid, err.Error())
	}

	stored, err := h.revoker.AddRevocation(c.Request().Context(), rev)
	switch {
	case errors.Is(err, identity.ErrInvalidRevocation):
		return adminError(c, http.StatusBadRequest, pdp.ReasonRequestInvalid, err.Error())
	case err != nil:
		slog.Error("revocation store failed", "kind", rev.Kind, "error", err)
		return adminError(c, http.StatusServiceUnavailable, pdp.ReasonStateUnavailable,
			"the revocation could not be stored; retry later")
	}
	return c.JSON(http.StatusCreated, stored)
}

// readRevocationRequest reads the body, up to maxRevocationBodyBytes, and
// decodes it as JSON whatever its Content-Type. curl -d sends
// application/x-www-form-urlencoded, and binding by content type would
// then ignore a JSON body without an error.
func readRevocationRequest(c echo.Context) (revocationRequest, error) {
	body := http.MaxBytesReader(c.Response(), c.Request().Body, maxRevocationBodyBytes)
	raw, err := io.ReadAll(body)
	if err != nil {
		return revocationRequest{}, fmt.Errorf("read body: %w", err)
	}
	return decodeRevocationRequest(raw)
}

// decodeRevocationRequest decodes one JSON object, rejecting unknown
// fields and data after the object. Its errors are messages for the
// caller.
func decodeRevocationRequest(raw []byte) (revocationRequest, error) {
	var req revocationRequest
	if len(bytes.TrimSpace(raw)) == 0 {
		return req, errors.New(`the body is empty. Send a JSON revocation such as ` +
			`{"kind": "jti", "value": "token-1", "ttl": "15m"}`)
	}

	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	var typeErr *json.UnmarshalTypeError
	var timeErr *time.ParseError
	switch {
	case errors.As(err, &timeErr):
		return req, fmt.Errorf("invalid JSON body: expires_at %q is not an RFC 3339 time "+
			"such as 2030-01-01T00:00:00Z", timeErr.Value)
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return req, fmt.Errorf("invalid JSON body: the body is a JSON %s, expected an object", typeErr.Value)
	case errors.As(err, &typeErr):
		return req, fmt.Errorf("invalid JSON body: field %q cannot be a JSON %s", typeErr.Field, typeErr.Value)
	case err != nil:
		return req, fmt.Errorf("invalid JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, errors.New("invalid JSON body: data after the revocation object")
	}
	return req, nil
}

// revocation converts the request, resolving ttl against now.
func (req revocationRequest) revocation(now time.Time) (identity.Revocation, error) {
	rev := identity.Revocation{Kind: req.Kind, Value: req.Value, Issuer: req.Issuer}
	switch {
	case req.ExpiresAt != nil && req.TTL != "":
		return rev, errors.New("set either expires_at or ttl, not both")
	case req.ExpiresAt != nil:
		rev.ExpiresAt = req.ExpiresAt.UTC()
	case req.TTL != "":
		ttl, err := time.ParseDuration(req.TTL)
		if err != nil || ttl <= 0 {
			return rev, errors.New(`ttl must be a positive duration such as "15m"`)
		}
		rev.ExpiresAt = now.Add(ttl).UTC()
	default:
		return rev, errors.New("expires_at or ttl is required")
	}
	if rev.ExpiresAt.Sub(now) > maxRevocationTTL {
		return rev, errors.New("a revocation may last at most 366 days")
	}
	return rev, nil
}

func adminError(c echo.Context, status int, reason pdp.Reason, message string) error {
	return c.JSON(status, adminErrorBody{Reason: reason, Message: message})
}
