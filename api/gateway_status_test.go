package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/authgate/pdp/pdp"
)

func TestLimitsShedAsGatewayDenials(t *testing.T) {
	engine, aud := testEngine(t, "package pdp.authz\n\nallow := true\n", "data.pdp.authz.allow")
	limits := NewLimits(LimitsConfig{MaxConcurrent: 1}, LimitsOptions{})
	srv := startHTTP(t, Options{Engine: engine, Limits: limits})
	if !limits.Limiter().TryAcquire() {
		t.Fatal("could not take the only decision slot")
	}
	defer limits.Limiter().Release()

	cases := []struct {
		name, method, path string
		header             map[string]string
		want               int
	}{
		{"direct API gets 429", "POST", "/v1/decision", nil, http.StatusTooManyRequests},
		{"envoy http gets 429", "GET", "/ext_authz/orders", nil, http.StatusTooManyRequests},
		{"nginx gets 403", "GET", "/nginx/auth", map[string]string{"X-Original-URI": "/orders"},
			http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			if got := resp.Header.Get("X-Pdp-Reason"); got != "request.overloaded" {
				t.Errorf("x-pdp-reason = %q, want request.overloaded", got)
			}
			id := resp.Header.Get("X-Pdp-Decision-Id")
			if _, ok := aud.Find(id); id == "" || !ok {
				t.Errorf("shed request decision id %q has no audit record", id)
			}
		})
	}
}

func TestGatewayStatusNeverFailsOpen(t *testing.T) {
	s := NewServer(Options{Engine: nopDecider{}})
	cases := []struct {
		path   string
		status int
		want   int
	}{
		{"/ext_authz/x", http.StatusServiceUnavailable, http.StatusForbidden},
		{"/ext_authz", http.StatusInternalServerError, http.StatusForbidden},
		{"/ext_authz/x", http.StatusTooManyRequests, http.StatusTooManyRequests},
		{"/nginx/auth", http.StatusTooManyRequests, http.StatusForbidden},
		{"/nginx/auth", http.StatusUnauthorized, http.StatusUnauthorized},
		{"/nginx/auth", http.StatusRequestHeaderFieldsTooLarge, http.StatusForbidden},
		{"/v1/decision", http.StatusServiceUnavailable, http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		if got := s.gatewayStatus(tc.path, tc.status); got != tc.want {
			t.Errorf("gatewayStatus(%s, %d) = %d, want %d", tc.path, tc.status, got, tc.want)
		}
	}
}

// nopDecider is a Decider for tests that never reach the engine.
type nopDecider struct{}

func (nopDecider) Decide(_ context.Context, _ *pdp.Request) pdp.Decision { return pdp.Decision{} }

func (nopDecider) Reject(_ context.Context, _ *pdp.Request, _ pdp.Reason, _ error) pdp.Decision {
	return pdp.Decision{}
}
