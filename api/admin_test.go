package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAdminPprof(t *testing.T) {
	get := func(h http.Handler, path, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	off := NewAdminServer(AdminOptions{Token: "admin-secret"}).Handler()
	if rec := get(off, "/debug/pprof/", "admin-secret"); rec.Code != http.StatusNotFound {
		t.Errorf("pprof off: GET /debug/pprof/ = %d, want 404", rec.Code)
	}

	on := NewAdminServer(AdminOptions{Token: "admin-secret", Pprof: true}).Handler()
	if rec := get(on, "/debug/pprof/", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("pprof on, no token: GET /debug/pprof/ = %d, want 401", rec.Code)
	}
	rec := get(on, "/debug/pprof/", "admin-secret")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("pprof on: GET /debug/pprof/ = %d, want 200 with the profile index", rec.Code)
	}
	rec = get(on, "/debug/pprof/heap?debug=1", "admin-secret")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "heap profile") {
		t.Errorf("pprof on: GET /debug/pprof/heap = %d, want 200 with a heap profile", rec.Code)
	}
}
