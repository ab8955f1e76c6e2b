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

// memoryCreatedAt is the CreatedAt that memoryRevoker stores.
var memoryCreatedAt = time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)

func (m *memoryRevoker) AddRevocation(_ context.Context, r identity.Revocation) (identity.Revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return identity.Revocation{}, m.err
	}
	if r.Kind != identity.RevokeTokenID && r.Kind != identity.RevokeSubject && r.Kind != identity.RevokeKeyID {
		return identity.Revocation{}, identity.ErrInvalidRevocation
	}
	r.CreatedAt = memoryCreatedAt
	m.list = append(m.list, r)
	return r, nil
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
	return doAdminWithType(t, e, method, auth, echo.MIMEApplicationJSON, body)
}

// doAdminWithType sends body with contentType, or with no Content-Type
// header when contentType is empty.
func doAdminWithType(t *testing.T, e *echo.Echo, method, auth, contentType, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, "/admin/revocations", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set(echo.HeaderContentType, contentType)
	}
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
	if first := list[0].(map[string]any); first["created_at"] != memoryCreatedAt.Format(time.RFC3339) {
		t.Errorf("first created_at = %v, want %s", first["created_at"], memoryCreatedAt.Format(time.RFC3339))
	}
}

func TestRevocationCreateRejects(t *testing.T) {
	e := newAdminServer(&memoryRevoker{})
	auth := "Bearer " + testAdminToken
	tests := []struct {
		name    string
		body    string
		message string
	}{
		{"not JSON", `{`, "invalid JSON body: unexpected EOF"},
		{"empty body", ``, "the body is empty"},
		{"array body", `[]`, "the body is a JSON array, expected an object"},
		{"unknown field", `{"kind":"jti","value":"x","ttl":"1m","reason":"leak"}`, `unknown field "reason"`},
		{"wrong field type", `{"kind":"jti","value":7,"ttl":"1m"}`, `field "value" cannot be a JSON number`},
		{"invalid expires_at", `{"kind":"jti","value":"x","expires_at":"tomorrow"}`, `expires_at "tomorrow" is not an RFC 3339 time`},
		{"trailing data", `{"kind":"jti","value":"x","ttl":"1m"} {}`, "data after the revocation object"},
		{"no expiry", `{"kind":"jti","value":"x"}`, "expires_at or ttl is required"},
		{"both expiries", `{"kind":"jti","value":"x","ttl":"1m","expires_at":"2030-01-01T00:00:00Z"}`, "not both"},
		{"negative ttl", `{"kind":"jti","value":"x","ttl":"-1m"}`, "positive duration"},
		{"ttl too long", `{"kind":"jti","value":"x","ttl":"10000h"}`, "at most 366 days"},
		{"unknown kind", `{"kind":"email","value":"x","ttl":"1m"}`, "invalid revocation"},
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
			if message, _ := body["message"].(string); !strings.Contains(message, tt.message) {
				t.Errorf("message = %q, want it to contain %q", message, tt.message)
			}
		})
	}
}

func TestRevocationCreateAnyContentType(t *testing.T) {
	auth := "Bearer " + testAdminToken
	tests := []struct {
		name        string
		contentType string
	}{
		{"no header", ""},
		{"form", "application/x-www-form-urlencoded"},
		{"plain text", "text/plain"},
		{"JSON with charset", "application/json; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &memoryRevoker{}
			e := newAdminServer(r)
			status, body := doAdminWithType(t, e, http.MethodPost, auth, tt.contentType,
				`{"kind":"jti","value":"token-1","ttl":"15m"}`)
			if status != http.StatusCreated {
				t.Fatalf("status = %d, want 201 (body %v)", status, body)
			}
			if body["value"] != "token-1" {
				t.Errorf("value = %v, want token-1", body["value"])
			}
			if len(r.list) != 1 {
				t.Errorf("stored revocations = %d, want 1", len(r.list))
			}
		})
	}
}

func TestRevocationCreateBodyTooLarge(t *testing.T) {
	r := &memoryRevoker{}
	e := newAdminServer(r)
	value := strings.Repeat("x", maxRevocationBodyBytes)
	status, body := doAdmin(t, e, http.MethodPost, "Bearer "+testAdminToken,
		`{"kind":"jti","value":"`+value+`","ttl":"1m"}`)
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", status)
	}
	if body["reason"] != string(pdp.ReasonRequestTooLarge) {
		t.Errorf("reason = %v, want request.too_large", body["reason"])
	}
	if len(r.list) != 0 {
		t.Errorf("stored revocations = %d, want 0", len(r.list))
	}
}

func TestRevocationCreateReturnsStored(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	a, err := identity.New(identity.Config{}, identity.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	e := newAdminServer(a)
	auth := "Bearer " + testAdminToken

	status, created := doAdmin(t, e, http.MethodPost, auth, `{"kind":"subject","value":"user-1","ttl":"15m"}`)
	if status != http.StatusCreated {
		t.Fatalf("status = %d, want 201 (body %v)", status, created)
	}
	want := now.Format(time.RFC3339Nano)
	if created["created_at"] != want {
		t.Errorf("created_at = %v, want %s", created["created_at"], want)
	}

	status, body := doAdmin(t, e, http.MethodGet, auth, "")
	if status != http.StatusOK {
		t.Fatalf("list: status = %d", status)
	}
	list, _ := body["revocations"].([]any)
	if len(list) != 1 {
		t.Fatalf("list = %v, want one revocation", body)
	}
	listed := list[0].(map[string]any)
	for _, key := range []string{"kind", "value", "expires_at", "created_at"} {
		if listed[key] != created[key] {
			t.Errorf("listed %s = %v, created %s = %v", key, listed[key], key, created[key])
		}
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
