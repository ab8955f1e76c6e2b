package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
)

// adminPolicy denies every request whose normalized path has an "admin"
// segment.
const adminPolicy = `package gw

default allow := false

allow if not "admin" in input.parsed_path
`

// TestAdminSegmentNeverSlipsPast sends encodings of /admin/x through every
// front door; each must be denied, and a harmless path allowed.
func TestAdminSegmentNeverSlipsPast(t *testing.T) {
	engine, _ := testEngine(t, adminPolicy, "gw/allow")
	client := startGRPC(t, GRPCOptions{Engine: engine})
	srv := startHTTP(t, Options{Engine: engine})

	doors := map[string]func(t *testing.T, target string) bool{
		"envoy_grpc": func(t *testing.T, target string) bool {
			resp := check(t, client, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Method: "GET", Path: target, Headers: map[string]string{":path": target},
				}},
			}})
			return codes.Code(resp.GetStatus().GetCode()) == codes.OK
		},
		"envoy_http": func(t *testing.T, target string) bool {
			return httpStatus(t, http.MethodGet, srv.URL+DefaultExtAuthzPrefix+target, nil, nil) == http.StatusOK
		},
		"nginx": func(t *testing.T, target string) bool {
			return httpStatus(t, http.MethodGet, srv.URL+DefaultNGINXPath, nil,
				map[string]string{"X-Original-URI": target, "X-Original-Method": "GET"}) == http.StatusOK
		},
		"direct": func(t *testing.T, target string) bool {
			body, _ := json.Marshal(map[string]any{"http": map[string]any{"method": "GET", "path": target}})
			resp, err := http.Post(srv.URL+"/v1/decision", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var d struct {
				Allow bool `json:"allow"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
				t.Fatal(err)
			}
			return d.Allow
		},
	}
	targets := []string{
		"/admin/x", "//admin/x", "/admin//x", "/%2Fadmin/x", "/admin/./x", "/admin/../admin/x",
		"/%61dmin/x", "/x/%2E%2E/admin/x", "/public/../admin/x?y=1", "http://h.test/admin/x",
		// Spellings an upstream may route to /admin/ although a plain
		// reading resolves them to /public/.
		"/admin/..%2Fpublic/x", "/admin/%2E%2E/public/x", "/admin/x/..%2F..%2Fpublic",
		"/admin/..;/public/x", "/admin;jsessionid=1/x", "/admin./x", "/public/..%252Fadmin/x",
		"/public/%c0%ae%c0%ae/admin/x",
	}
	for door, allowed := range doors {
		for _, target := range targets {
			t.Run(door+" "+target, func(t *testing.T) {
				if allowed(t, target) {
					t.Errorf("%s allowed %q", door, target)
				}
			})
		}
		t.Run(door+" /public/x", func(t *testing.T) {
			if !allowed(t, "/public/x") {
				t.Errorf("%s denied /public/x", door)
			}
		})
	}
}

func httpStatus(t *testing.T, method, url string, body []byte, headers map[string]string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

const gatewayPolicy = `package gw

default result := {"allowed": false}

result := {"allowed": true, "headers": {"x-user": input.identity.subject, "x-pdp-tenant": "forged"}} if {
	input.identity.verified
	not "admin" in input.parsed_path
	not "unavailable" in input.parsed_path
	not "ok-deny" in input.parsed_path
}

result := {"allowed": false, "http_status": 503} if "unavailable" in input.parsed_path

result := {"allowed": false, "http_status": 200} if "ok-deny" in input.parsed_path
`

func TestEnvoyHTTPAnswers(t *testing.T) {
	engine, _ := testEngine(t, gatewayPolicy, "gw/result")
	srv := startHTTP(t, Options{Engine: engine, MaxBodyBytes: 64})
	auth := map[string]string{"Authorization": "Bearer " + testToken, "X-Pdp-Subject": "mallory"}

	resp := doHTTP(t, http.MethodPost, srv.URL+"/ext_authz/orders?x=1", []byte(`{}`), auth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("x-pdp-subject"); got != "alice" {
		t.Errorf("x-pdp-subject = %q, want alice", got)
	}
	if got := resp.Header.Values("x-pdp-tenant"); len(got) != 1 || got[0] != "t-1" {
		t.Errorf("x-pdp-tenant = %q, want the verified tenant only", got)
	}
	if got := resp.Header.Get(envoyHeadersToRemove); got != "x-pdp-spiffe-id" {
		t.Errorf("%s = %q, want x-pdp-spiffe-id", envoyHeadersToRemove, got)
	}

	cases := []struct {
		name, path string
		headers    map[string]string
		body       []byte
		status     int
		reason     string
	}{
		{"no token", "/ext_authz/orders", nil, nil, 403, "policy.denied"},
		{"bad token", "/ext_authz/orders", map[string]string{"Authorization": "Bearer nope"}, nil, 401, "token.invalid"},
		{"policy 503 becomes 403", "/ext_authz/unavailable", auth, nil, 403, "policy.denied"},
		{"policy 200 deny becomes 403", "/ext_authz/ok-deny", auth, nil, 403, "policy.denied"},
		{"body too large", "/ext_authz/orders", auth, bytes.Repeat([]byte("a"), 100), 413, "request.too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := doHTTP(t, http.MethodPost, srv.URL+tc.path, tc.body, tc.headers)
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("x-pdp-reason"); got != tc.reason {
				t.Errorf("x-pdp-reason = %q, want %s", got, tc.reason)
			}
		})
	}
}

func TestNGINXAnswersOnly401Or403(t *testing.T) {
	engine, _ := testEngine(t, gatewayPolicy, "gw/result")
	srv := startHTTP(t, Options{Engine: engine})
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	cases := []struct {
		name    string
		headers map[string]string
		status  int
		reason  string
	}{
		{"allow", map[string]string{"X-Original-URI": "/orders"}, 200, ""},
		{"policy deny", map[string]string{"X-Original-URI": "/admin"}, 403, "policy.denied"},
		{"policy 503", map[string]string{"X-Original-URI": "/unavailable"}, 403, "policy.denied"},
		{"bad token", map[string]string{"X-Original-URI": "/orders", "Authorization": "Bearer nope"}, 401, "token.invalid"},
		{"no original URI", map[string]string{}, 403, "request.invalid"},
		{"bad encoding", map[string]string{"X-Original-URI": "/a%zz"}, 403, "request.invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			headers := map[string]string{}
			for k, v := range auth {
				headers[k] = v
			}
			for k, v := range tc.headers {
				headers[k] = v
			}
			resp := doHTTP(t, http.MethodGet, srv.URL+DefaultNGINXPath, nil, headers)
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("x-pdp-reason"); got != tc.reason {
				t.Errorf("x-pdp-reason = %q, want %q", got, tc.reason)
			}
		})
	}
}

func doHTTP(t *testing.T, method, url string, body []byte, headers map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func TestOriginalTarget(t *testing.T) {
	cases := map[string]string{
		"/ext_authz":              "/",
		"/ext_authz?a=1":          "/?a=1",
		"/ext_authz//admin/x":     "//admin/x",
		"/ext_authz/%2Fadmin?b=2": "/%2Fadmin?b=2",
	}
	for uri, want := range cases {
		if got := originalTarget(uri, "/ext_authz"); got != want {
			t.Errorf("originalTarget(%q) = %q, want %q", uri, got, want)
		}
	}
	if !strings.HasPrefix(DefaultExtAuthzPrefix, "/") {
		t.Error("default prefix is not absolute")
	}
}
