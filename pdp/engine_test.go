package pdp

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/open-policy-agent/opa/v1/ast"
	"strings"
	"sync"
	"testing"
)

// funcPolicy is a Policy whose result comes from a Go function, so the
// pipeline can be tested apart from Rego (bundles tests cover Rego itself).
type funcPolicy struct {
	eval func(input map[string]any) (any, bool, error)
}

func (p funcPolicy) Revision() string { return "rev-1" }

func (p funcPolicy) Eval(_ context.Context, input ast.Value) (any, bool, error) {
	doc, err := ast.JSON(input)
	if err != nil {
		return nil, false, err
	}
	return p.eval(doc.(map[string]any))
}

func (p funcPolicy) Query(context.Context, string, any) (any, bool, error) {
	return nil, false, nil
}

type staticSource struct{ p Policy }

func (s staticSource) Active() Policy { return s.p }

// memoryAuditor keeps events in memory and fails when err is set.
type memoryAuditor struct {
	mu     sync.Mutex
	events []*AuditEvent
	err    error
}

func (a *memoryAuditor) Record(_ context.Context, ev *AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	a.events = append(a.events, ev)
	return nil
}

func newTestEngine(t *testing.T, result any, opts Options) (*Engine, *memoryAuditor) {
	t.Helper()
	aud := &memoryAuditor{}
	if opts.Policies == nil {
		opts.Policies = staticSource{funcPolicy{eval: func(map[string]any) (any, bool, error) {
			return result, result != nil, nil
		}}}
	}
	opts.Auditor = aud
	if opts.Routes == nil {
		opts.Routes = []Route{{Name: "all"}}
	}
	e, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e, aud
}

func TestDecidePolicyResults(t *testing.T) {
	cases := []struct {
		name       string
		result     any
		wantAllow  bool
		wantReason Reason
		wantStatus int
	}{
		{"boolean allow", true, true, ReasonAllowed, 200},
		{"boolean deny", false, false, ReasonPolicyDenied, 403},
		{"undefined denies", nil, false, ReasonPolicyDenied, 403},
		{"object allow", map[string]any{"allowed": true}, true, ReasonAllowed, 200},
		{"object deny with status", map[string]any{"allowed": false, "http_status": json.Number("429")},
			false, ReasonPolicyDenied, 429},
		{"object without allowed", map[string]any{"http_status": json.Number("200")},
			false, ReasonPolicyError, 500},
		{"string result", "yes", false, ReasonPolicyError, 500},
		{"invalid status", map[string]any{"allowed": false, "http_status": json.Number("99")},
			false, ReasonPolicyError, 500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, aud := newTestEngine(t, tc.result, Options{})
			d := e.Decide(context.Background(), &Request{FrontDoor: FrontDoorDirect})
			if d.Allow != tc.wantAllow {
				t.Errorf("Allow = %v, want %v", d.Allow, tc.wantAllow)
			}
			if d.Reason != tc.wantReason {
				t.Errorf("Reason = %q, want %q", d.Reason, tc.wantReason)
			}
			if d.HTTPStatus != tc.wantStatus {
				t.Errorf("HTTPStatus = %d, want %d", d.HTTPStatus, tc.wantStatus)
			}
			if len(aud.events) != 1 || aud.events[0].DecisionID != d.ID {
				t.Fatalf("audit events = %d, want one with decision id %s", len(aud.events), d.ID)
			}
			if aud.events[0].Reason != d.Reason {
				t.Errorf("audit reason = %q, want %q", aud.events[0].Reason, d.Reason)
			}
		})
	}
}

func TestDecideObjectFields(t *testing.T) {
	result := map[string]any{
		"allowed":                   true,
		"headers":                   map[string]any{"x-user": "alice"},
		"response_headers_to_add":   map[string]any{"x-a": []any{"1", "2"}},
		"request_headers_to_remove": []any{"authorization"},
		"dynamic_metadata":          map[string]any{"k": "v"},
		"reasons":                   []any{"reader"},
	}
	e, _ := newTestEngine(t, result, Options{})
	d := e.Decide(context.Background(), &Request{})
	if got := d.Headers["x-user"]; len(got) != 1 || got[0] != "alice" {
		t.Errorf("Headers[x-user] = %v, want [alice]", got)
	}
	if got := d.ResponseHeadersToAdd["x-a"]; len(got) != 2 {
		t.Errorf("ResponseHeadersToAdd[x-a] = %v, want 2 values", got)
	}
	if len(d.RequestHeadersToRemove) != 1 || d.RequestHeadersToRemove[0] != "authorization" {
		t.Errorf("RequestHeadersToRemove = %v", d.RequestHeadersToRemove)
	}
	if d.DynamicMetadata["k"] != "v" {
		t.Errorf("DynamicMetadata = %v", d.DynamicMetadata)
	}
	if len(d.Reasons) != 1 || d.Reasons[0] != "reader" {
		t.Errorf("Reasons = %v", d.Reasons)
	}
}

func TestDecideEvalError(t *testing.T) {
	failing := staticSource{funcPolicy{eval: func(map[string]any) (any, bool, error) {
		return nil, false, errors.New("eval_conflict_error")
	}}}
	e, _ := newTestEngine(t, nil, Options{Policies: failing})
	d := e.Decide(context.Background(), &Request{})
	if d.Allow || d.Reason != ReasonPolicyError {
		t.Fatalf("decision = %v %q, want deny policy.error", d.Allow, d.Reason)
	}
	if got := d.Headers["x-pdp-reason"]; len(got) != 1 || got[0] != string(ReasonPolicyError) {
		t.Errorf("x-pdp-reason = %v", got)
	}
}

func TestDecideNoActivePolicy(t *testing.T) {
	e, _ := newTestEngine(t, nil, Options{Policies: staticSource{}})
	d := e.Decide(context.Background(), &Request{})
	if d.Allow || d.Reason != ReasonNoPolicy {
		t.Fatalf("decision = %v %q, want deny %q", d.Allow, d.Reason, ReasonNoPolicy)
	}
}

func TestDecideAuditFailureDenies(t *testing.T) {
	e, aud := newTestEngine(t, true, Options{})
	aud.err = errors.New("disk full")
	d := e.Decide(context.Background(), &Request{})
	if d.Allow || d.Reason != ReasonAuditUnavailable {
		t.Fatalf("decision = %v %q, want deny audit.unavailable", d.Allow, d.Reason)
	}
}

func TestDecideRouting(t *testing.T) {
	routes := []Route{
		{Name: "callbacks", Paths: []string{"/callbacks/**"}, Message: MessageRequirement{Required: true}},
		{Name: "api", Hosts: []string{"*.example.test"}, Methods: []string{"GET"},
			Paths: []string{"/api/*"}, Token: TokenRequirement{Required: true}},
		{Name: "public", Paths: []string{"/public/**"}},
	}
	cases := []struct {
		name, method, host, path string
		want                     Reason
	}{
		{"public allowed", "GET", "a.example.test", "/public/x", ReasonAllowed},
		{"callback needs signature", "POST", "", "/callbacks/payments", ReasonSignatureMissing},
		{"api needs token", "GET", "api.example.test", "/api/items", ReasonTokenMissing},
		{"api token without issuers", "GET", "api.example.test", "/api/items", ReasonTokenInvalid},
		{"api wrong host unmatched", "GET", "evil.test", "/api/items", ReasonRouteUnmatched},
		{"api deeper path unmatched", "GET", "api.example.test", "/api/items/1", ReasonRouteUnmatched},
		{"dot segments normalized", "POST", "", "/public/../callbacks/x", ReasonSignatureMissing},
		{"encoded slash normalized", "POST", "", "/%2Fcallbacks/x", ReasonSignatureMissing},
		{"double slash normalized", "POST", "", "//callbacks//x", ReasonSignatureMissing},
		{"bad encoding invalid", "GET", "", "/public/%zz", ReasonRequestInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newTestEngine(t, true, Options{Routes: routes})
			req := &Request{HTTP: &HTTPRequest{
				Method: tc.method, Host: tc.host, Path: tc.path, Headers: map[string]string{},
			}}
			if tc.want == ReasonTokenInvalid {
				req.Token = "not-a-jwt"
			}
			d := e.Decide(context.Background(), req)
			if d.Reason != tc.want {
				t.Fatalf("Reason = %q, want %q", d.Reason, tc.want)
			}
			challenge := d.Headers["www-authenticate"]
			isToken := tc.want == ReasonTokenMissing || tc.want == ReasonTokenInvalid
			if isToken != (len(challenge) == 1) {
				t.Errorf("www-authenticate = %v for reason %q", challenge, d.Reason)
			}
		})
	}
}

// failingReplay is a ReplayStore that returns a fixed error.
type failingReplay struct{ err error }

func (f failingReplay) Check(context.Context, ReplayCheck) error { return f.err }

// acceptingVerifier accepts every message as sender "billing".
type acceptingVerifier struct{}

func (acceptingVerifier) Verify(context.Context, *SignedMessage, MessageRequirement) (*Message, error) {
	return &Message{Verified: true, ID: "msg-1", Sender: "billing", Timestamp: 1}, nil
}

func TestDecideReplayOutcomes(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want Reason
	}{
		{"fresh", nil, ReasonAllowed},
		{"nonce reused", Deny(ReasonNonceReused, nil), ReasonNonceReused},
		{"store down", errors.New("dial tcp: connection refused"), ReasonStateUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, aud := newTestEngine(t, true, Options{
				Routes:   []Route{{Name: "cb", Message: MessageRequirement{Required: true}}},
				Messages: acceptingVerifier{},
				Replay:   failingReplay{tc.err},
			})
			d := e.Decide(context.Background(), &Request{Message: &SignedMessage{}})
			if d.Reason != tc.want {
				t.Fatalf("Reason = %q, want %q", d.Reason, tc.want)
			}
			if aud.events[0].MessageID != "msg-1" {
				t.Errorf("audit message id = %q, want msg-1", aud.events[0].MessageID)
			}
		})
	}
}

func TestDecideInputShape(t *testing.T) {
	var seen map[string]any
	capture := staticSource{funcPolicy{eval: func(in map[string]any) (any, bool, error) {
		seen = in
		return true, true, nil
	}}}
	e, _ := newTestEngine(t, nil, Options{Policies: capture, Instance: "pdp-a"})
	e.Decide(context.Background(), &Request{
		FrontDoor: FrontDoorEnvoyHTTP,
		Subject:   Subject{Type: "user", ID: "alice"},
		Token:     "secret-token-value",
		HTTP: &HTTPRequest{Method: "POST", Path: "/a//b/../c?x=1&x=2", Size: -1,
			Headers: map[string]string{"content-type": "application/json"},
			Body:    []byte(`{"n": 12345678901234567890}`)},
	})
	b, _ := json.Marshal(seen)
	got := string(b)
	for _, want := range []string{
		`"parsed_path":["a","c"]`, `"parsed_query":{"x":["1","2"]}`,
		`"parsed_body":{"n":12345678901234567890}`, `"truncated_body":false`,
		`"front_door":"envoy_http"`, `"instance":"pdp-a"`, `"normalized_path":"/a/c"`,
		`"path":"/a//b/../c?x=1\u0026x=2"`,
	} {
		if !contains(got, want) {
			t.Errorf("input lacks %s\ninput: %s", want, got)
		}
	}
	if contains(got, "secret-token-value") {
		t.Errorf("input contains the bearer token: %s", got)
	}
}

func TestParseBodyTruncatedAndInvalid(t *testing.T) {
	partial := &HTTPRequest{Headers: map[string]string{
		"content-type": "application/json", "x-envoy-auth-partial-body": "true"}, Body: []byte(`{"a":`)}
	if body, truncated, err := ParseBody(partial); body != nil || !truncated || err != nil {
		t.Errorf("partial body: got %v %v %v, want nil true nil", body, truncated, err)
	}
	short := &HTTPRequest{Headers: map[string]string{
		"content-type": "application/json", "content-length": "100"}, Body: []byte(`{}`)}
	if _, truncated, _ := ParseBody(short); !truncated {
		t.Errorf("content-length above body size: truncated = false, want true")
	}
	broken := &HTTPRequest{Headers: map[string]string{"content-type": "application/json"},
		Body: []byte(`["foo" : 42}`)}
	if _, _, err := ParseBody(broken); ReasonOf(err, "") != ReasonRequestInvalid {
		t.Errorf("broken JSON: err = %v, want request.invalid", err)
	}
}

func TestReasonsHaveStatusAndText(t *testing.T) {
	for _, r := range Reasons() {
		if r.HTTPStatus() < 200 || r.Text() == "" {
			t.Errorf("reason %q: status %d text %q", r, r.HTTPStatus(), r.Text())
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
