package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/authgate/pdp/identity"
	"github.com/authgate/pdp/pdp"
)

// memoryRevoker records revocations; err, when set, fails every call.
type memoryRevoker struct {
	mu   sync.Mutex
	list []identity.Revocation
	err  error
}

func (m *memoryRevoker) Revoke(_ context.Context, r identity.Revocation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if r.Kind != identity.RevokeTokenID && r.Kind != identity.RevokeSubject && r.Kind != identity.RevokeKeyID {
		return identity.ErrInvalidRevocation
	}
	m.list = append(m.list, r)
	return nil
}

func (m *memoryRevoker) Revocations(context.Context) ([]identity.Revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.list, m.err
}

const testAdminToken = "admin-token-for-tests"

func newAdminServer(r Revoker) *echo.Echo {
	e := echo.New()
	g := e.Group("/admin", RequireAdminToken(testAdminToken))
	RegisterRevocation(g, r)
	return e
}

func doAdmin(t *testing.T, e *echo.Echo, method, auth, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, "/admin/revocations", strings.NewReader(body))
	req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	if auth != "" {
		req.Header.Set(echo.HeaderAuthorization, auth)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("response is not JSON: %q", rec.Body.String())
	}
	return rec.Code, out
}

func TestRequireAdminToken(t *testing.T) {
	e := newAdminServer(&memoryRevoker{})
	tests := []struct {
		name   string
		auth   string
		status int
		reason pdp.Reason
	}{
		{"no header", "", http.StatusUnauthorized, pdp.ReasonTokenMissing},
		{"basic scheme", "Basic YWRtaW46eA==", http.StatusUnauthorized, pdp.ReasonTokenMissing},
		{"wrong token", "Bearer nope", http.StatusUnauthorized, pdp.ReasonTokenInvalid},
		{"token prefix", "Bearer " + testAdminToken[:5], http.StatusUnauthorized, pdp.ReasonTokenInvalid},
		{"right token", "Bearer " + testAdminToken, http.StatusOK, ""},
		{"lower-case scheme", "bearer " + testAdminToken, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := doAdmin(t, e, http.MethodGet, tt.auth, "")
			if status != tt.status {
				t.Fatalf("status = %d, want %d (body %v)", status, tt.status, body)
			}
			if tt.reason != "" && body["reason"] != string(tt.reason) {
				t.Errorf("reason = %v, want %s", body["reason"], tt.reason)
			}
		})
	}
}

func TestRequireAdminTokenEmptyRejectsAll(t *testing.T) {
	e := echo.New()
	e.GET("/x", func(c echo.Context) error { return c.NoContent(http.StatusOK) }, RequireAdminToken(""))
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	req.Header.Set(echo.HeaderAuthorization, "Bearer anything")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", rec.Code)
	}
}

func TestRevocationEndpoints(t *testing.T) {
	r := &memoryRevoker{}
	e := newAdminServer(r)
	auth := "Bearer " + testAdminToken
	expires := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)

	status, body := doAdmin(t, e, http.MethodPost, auth, `{"kind":"jti","value":"token-1","expires_at":"`+expires+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("create by expires_at: status = %d (body %v)", status, body)
	}
	status, body = doAdmin(t, e, http.MethodPost, auth, `{"kind":"subject","value":"user-1","ttl":"15m"}`)
	if status != http.StatusCreated {
		t.Fatalf("create by ttl: status = %d (body %v)", status, body)
	}
	status, body = doAdmin(t, e, http.MethodGet, auth, "")
	if status != http.StatusOK {
		t.Fatalf("list: status = %d", status)
	}
	list, _ := body["revocations"].([]any)
	if len(list) != 2 {
		t.Fatalf("list = %v, want two revocations", body)
	}
	if first := list[0].(map[string]any); first["kind"] != "jti" || first["value"] != "token-1" {
		t.Errorf("first revocation = %v", first)
	}
}

func TestRevocationCreateRejects(t *testing.T) {
	e := newAdminServer(&memoryRevoker{})
	auth := "Bearer " + testAdminToken
	tests := []struct {
		name string
		body string
	}{
		{"not JSON", `{`},
		{"no expiry", `{"kind":"jti","value":"x"}`},
		{"both expiries", `{"kind":"jti","value":"x","ttl":"1m","expires_at":"2030-01-01T00:00:00Z"}`},
		{"negative ttl", `{"kind":"jti","value":"x","ttl":"-1m"}`},
		{"ttl too long", `{"kind":"jti","value":"x","ttl":"10000h"}`},
		{"unknown kind", `{"kind":"email","value":"x","ttl":"1m"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := doAdmin(t, e, http.MethodPost, auth, tt.body)
			if status != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400 (body %v)", status, body)
			}
			if body["reason"] != string(pdp.ReasonRequestInvalid) {
				t.Errorf("reason = %v, want request.invalid", body["reason"])
			}
		})
	}
}

func TestRevocationStoreUnavailable(t *testing.T) {
	e := newAdminServer(&memoryRevoker{err: errors.New("redis: connection refused")})
	auth := "Bearer " + testAdminToken
	status, body := doAdmin(t, e, http.MethodPost, auth, `{"kind":"jti","value":"x","ttl":"1m"}`)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", status)
	}
	if strings.Contains(body["message"].(string), "redis") {
		t.Errorf("message %q leaks the internal error", body["message"])
	}
	if status, _ := doAdmin(t, e, http.MethodGet, auth, ""); status != http.StatusServiceUnavailable {
		t.Errorf("list: status = %d, want 503", status)
	}
}
