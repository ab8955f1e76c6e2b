package identity

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"
)

// jwksRefresh is one call of Options.OnJWKSRefresh.
type jwksRefresh struct {
	issuer string
	err    error
}

// jwksRefreshRecorder collects OnJWKSRefresh calls from fetch goroutines.
type jwksRefreshRecorder struct {
	mu    sync.Mutex
	calls []jwksRefresh
}

func (r *jwksRefreshRecorder) record(issuer string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, jwksRefresh{issuer: issuer, err: err})
}

func (r *jwksRefreshRecorder) snapshot() []jwksRefresh {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]jwksRefresh(nil), r.calls...)
}

func TestOnJWKSRefresh(t *testing.T) {
	const minRefresh = 100 * time.Millisecond
	s := newJWKSServer(t)
	key := newECKey(t)
	s.setKey("k1", key)
	rec := &jwksRefreshRecorder{}
	a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{jwksIssuer(s, minRefresh)}},
		Options{Now: time.Now, OnJWKSRefresh: rec.record})

	// Start waits for the first fetch, which succeeds.
	calls := rec.snapshot()
	if len(calls) != 1 {
		t.Fatalf("OnJWKSRefresh calls after Start = %d, want 1", len(calls))
	}
	if calls[0].issuer != "remote" {
		t.Errorf("issuer = %q, want the configured name remote", calls[0].issuer)
	}
	if calls[0].err != nil {
		t.Errorf("error after a successful fetch = %v, want nil", calls[0].err)
	}

	// An unknown kid triggers a fetch, which the request waits for.
	s.setStatus(http.StatusServiceUnavailable)
	waitPast(time.Now(), minRefresh)
	token := signClaims(t, "ES256", "unknown", key, validClaims(time.Now()))
	if _, err := a.VerifyToken(context.Background(), token, nil); err == nil {
		t.Fatal("VerifyToken with an unknown kid returned nil")
	}
	calls = rec.snapshot()
	if len(calls) != 2 {
		t.Fatalf("OnJWKSRefresh calls after a failed fetch = %d, want 2", len(calls))
	}
	if calls[1].issuer != "remote" {
		t.Errorf("issuer = %q, want the configured name remote", calls[1].issuer)
	}
	if calls[1].err == nil {
		t.Error("error after a failed fetch is nil, want the fetch error")
	}
}
