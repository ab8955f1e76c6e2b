package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/authgate/pdp/identity"
	"github.com/authgate/pdp/pdp"
)

// maxRevocationTTL caps the lifetime of one revocation, so that the shared
// list cannot grow without bound from forgotten entries.
const maxRevocationTTL = 366 * 24 * time.Hour

// Revoker stores and lists credential revocations; *identity.Authenticator
// implements it.
type Revoker interface {
	Revoke(ctx context.Context, r identity.Revocation) error
	Revocations(ctx context.Context) ([]identity.Revocation, error)
}

var _ Revoker = (*identity.Authenticator)(nil)

// revocationRequest is the body of POST /revocations. Exactly one of
// expires_at (RFC 3339) and ttl (a Go duration such as "15m") is set.
type revocationRequest struct {
	Kind      identity.RevocationKind `json:"kind"`
	Value     string                  `json:"value"`
	Issuer    string                  `json:"issuer"`
	ExpiresAt *time.Time              `json:"expires_at"`
	TTL       string                  `json:"ttl"`
}

// revocationList is the body of GET /revocations.
type revocationList struct {
	Revocations []identity.Revocation `json:"revocations"`
}

// RegisterRevocation adds the revocation admin endpoints to g:
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
	var req revocationRequest
	if err := c.Bind(&req); err != nil {
		return adminError(c, http.StatusBadRequest, pdp.ReasonRequestInvalid, "the body is not a valid JSON revocation")
	}
	rev, err := req.revocation(time.Now())
	if err != nil {
		return adminError(c, http.StatusBadRequest, pdp.ReasonRequestInvalid, err.Error())
	}
	err = h.revoker.Revoke(c.Request().Context(), rev)
	switch {
	case errors.Is(err, identity.ErrInvalidRevocation):
		return adminError(c, http.StatusBadRequest, pdp.ReasonRequestInvalid, err.Error())
	case err != nil:
		slog.Error("revocation store failed", "kind", rev.Kind, "error", err)
		return adminError(c, http.StatusServiceUnavailable, pdp.ReasonStateUnavailable,
			"the revocation could not be stored; retry later")
	}
	return c.JSON(http.StatusCreated, rev)
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
