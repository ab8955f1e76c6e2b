package pdp

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/open-policy-agent/opa/v1/ast"
	"reflect"
	"testing"
)

func TestParseBodyShapes(t *testing.T) {
	cases := []struct {
		name      string
		headers   map[string]string
		body      string
		want      any
		truncated bool
		reason    Reason
	}{
		{"json number kept exact", map[string]string{"content-type": "application/json"},
			"12345678901234567890", json.Number("12345678901234567890"), false, ""},
		{"json trailing data", map[string]string{"content-type": "application/json"},
			`{"a":1} x`, nil, false, ReasonRequestInvalid},
		{"json malformed", map[string]string{"content-type": "application/json"},
			`["foo" : 42}`, nil, false, ReasonRequestInvalid},
		{"vendor json", map[string]string{"content-type": "application/vnd.api+json; charset=utf-8"},
			`{"a":true}`, map[string]any{"a": true}, false, ""},
		{"json with empty parameter", map[string]string{"content-type": "application/json;"},
			`true`, true, false, ""},
		{"form", map[string]string{"content-type": "application/x-www-form-urlencoded"},
			"a=1&a=2", map[string][]string{"a": {"1", "2"}}, false, ""},
		{"multipart CRLF", map[string]string{"content-type": "multipart/form-data; boundary=b"},
			"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--b--\r\n",
			map[string][]any{"f": {"v"}}, false, ""},
		{"multipart without boundary", map[string]string{"content-type": "multipart/form-data"},
			"--b\r\n", nil, false, ""},
		{"multipart bad json part", map[string]string{"content-type": "multipart/form-data; boundary=b"},
			"--b\r\nContent-Disposition: form-data; name=\"f\"\r\nContent-Type: application/json\r\n\r\n{\r\n--b--\r\n",
			nil, false, ReasonRequestInvalid},
		{"invalid content-length", map[string]string{"content-type": "application/json", "content-length": "ten"},
			"true", nil, false, ReasonRequestInvalid},
		{"truncated by content-length", map[string]string{"content-type": "text/plain", "content-length": "10"},
			"abc", nil, true, ""},
		{"partial header", map[string]string{"x-envoy-auth-partial-body": "TRUE"},
			"abc", nil, true, ""},
		{"empty body with content-length", map[string]string{"content-type": "application/json", "content-length": "41"},
			"", nil, false, ""},
		{"unknown type", map[string]string{"content-type": "text/plain"}, "x", nil, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, truncated, err := ParseBody(&HTTPRequest{Headers: tc.headers, Body: []byte(tc.body)})
			if tc.reason != "" {
				if ReasonOf(err, "") != tc.reason {
					t.Fatalf("error = %v, want reason %s", err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBody: %v", err)
			}
			if truncated != tc.truncated {
				t.Errorf("truncated = %v, want %v", truncated, tc.truncated)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parsed body = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestInputEnvoyPluginFields(t *testing.T) {
	req := &Request{
		FrontDoor:  FrontDoorEnvoyGRPC,
		Attributes: map[string]any{},
		HTTP:       &HTTPRequest{Method: "GET", Path: "/a"},
		Peer:       &Peer{Principal: "spiffe://test/x"},
	}
	in, err := buildInput(req, inputFacts{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in["version"], envoyVersion) {
		t.Errorf("version = %v, want %v", in["version"], envoyVersion)
	}
	if in["source_principal"] != "spiffe://test/x" {
		t.Errorf("source_principal = %v", in["source_principal"])
	}

	in, err = buildInput(&Request{HTTP: &HTTPRequest{Method: "GET", Path: "/a"}}, inputFacts{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := in["version"]; ok {
		t.Error("version set for a request without CheckRequest attributes")
	}
	if _, ok := in["source_principal"]; ok {
		t.Error("source_principal set without a peer")
	}
}

// queryPolicy answers Query from a function.
type queryPolicy struct {
	funcPolicy
	query func(path string, input any) (any, bool, error)
}

func (p queryPolicy) Query(_ context.Context, path string, input any) (any, bool, error) {
	return p.query(path, input)
}

func TestQueryAuditsEveryOutcome(t *testing.T) {
	cases := []struct {
		name        string
		result      any
		defined     bool
		evalErr     error
		wantAllow   bool
		wantReason  Reason
		wantErr     bool
		wantDefined bool
	}{
		{"true allows", true, true, nil, true, ReasonAllowed, false, true},
		{"object allowed", map[string]any{"allowed": true}, true, nil, true, ReasonAllowed, false, true},
		{"other value", map[string]any{"roles": []any{"a"}}, true, nil, false, ReasonPolicyDenied, false, true},
		{"null value", nil, true, nil, false, ReasonPolicyDenied, false, true},
		{"undefined", nil, false, nil, false, ReasonPolicyDenied, false, false},
		{"eval error", nil, false, errors.New("boom"), false, ReasonPolicyError, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var gotPath string
			var gotInput any
			p := queryPolicy{query: func(path string, input any) (any, bool, error) {
				gotPath, gotInput = path, input
				return tc.result, tc.defined, tc.evalErr
			}}
			e, aud := newTestEngine(t, nil, Options{Policies: staticSource{p}})
			d, defined, err := e.Query(context.Background(), &Request{FrontDoor: FrontDoorOPA},
				"envoy/authz/allow", map[string]any{"x": 1})
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrQueryFailed) {
				t.Errorf("error %v does not wrap ErrQueryFailed", err)
			}
			if defined != tc.wantDefined {
				t.Errorf("defined = %v, want %v", defined, tc.wantDefined)
			}
			if d.Allow != tc.wantAllow || d.Reason != tc.wantReason {
				t.Errorf("decision = %v %s, want %v %s", d.Allow, d.Reason, tc.wantAllow, tc.wantReason)
			}
			wantInput := ast.MustInterfaceToValue(map[string]any{"x": 1})
			gotValue, _ := gotInput.(ast.Value)
			if gotPath != "envoy/authz/allow" || gotValue == nil || gotValue.Compare(wantInput) != 0 {
				t.Errorf("policy got path %q input %v", gotPath, gotInput)
			}
			if len(aud.events) != 1 || aud.events[0].DecisionID != d.ID {
				t.Fatalf("audit events = %d, want one for %s", len(aud.events), d.ID)
			}
			if aud.events[0].InputDigest == "" && tc.evalErr == nil {
				t.Error("audit record has no input digest")
			}
		})
	}
}

func TestQueryAuditFailureHidesResult(t *testing.T) {
	p := queryPolicy{query: func(string, any) (any, bool, error) { return true, true, nil }}
	e, aud := newTestEngine(t, nil, Options{Policies: staticSource{p}})
	aud.err = errors.New("disk full")
	d, _, err := e.Query(context.Background(), &Request{}, "x", nil)
	if ReasonOf(err, "") != ReasonAuditUnavailable {
		t.Fatalf("error = %v, want audit.unavailable", err)
	}
	if d.Allow || d.Result != nil {
		t.Errorf("decision = allow %v result %v, want deny without result", d.Allow, d.Result)
	}
}

// FuzzParseBody checks that no body and content type make ParseBody panic,
// and that every error carries request.invalid.
func FuzzParseBody(f *testing.F) {
	f.Add("application/json", []byte(`{"a":[1,2,{"b":null}]}`))
	f.Add("application/x-www-form-urlencoded", []byte("a=1&a=2&b=%zz"))
	f.Add("multipart/form-data; boundary=xyz", []byte("--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--xyz--\r\n"))
	f.Add("application/json", []byte(`["foo" : 42}`))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		h := &HTTPRequest{Headers: map[string]string{"content-type": contentType}, Body: body, Size: -1}
		_, _, err := ParseBody(h)
		if err != nil && ReasonOf(err, "") != ReasonRequestInvalid {
			t.Fatalf("error %v has reason %q, want request.invalid", err, ReasonOf(err, ""))
		}
	})
}
