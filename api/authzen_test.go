package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

const authzenPolicy = `package pdp.authz

default decision := false

decision if {
	input.subject.id == "alice"
	input.action.name in {"read", "write"}
	input.resource.type == "document"
}
`

type authzenResp struct {
	Decision bool           `json:"decision"`
	Context  authzenContext `json:"context"`
}

func TestAuthZENEvaluation(t *testing.T) {
	engine, aud := testEngine(t, authzenPolicy, "pdp/authz/decision")
	srv := startHTTP(t, Options{Engine: engine})
	cases := []struct {
		name, body string
		status     int
		decision   bool
		reason     string
	}{
		{"permit", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"document","id":"d1"}}`,
			200, true, "policy.allowed"},
		{"deny", `{"subject":{"type":"user","id":"bob"},"action":{"name":"read"},"resource":{"type":"document","id":"d1"}}`,
			200, false, "policy.denied"},
		{"missing action", `{"subject":{"type":"user","id":"bob"},"resource":{"type":"document","id":"d1"}}`,
			400, false, "request.invalid"},
		{"malformed", `{"subject":`, 400, false, "request.invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := doHTTP(t, http.MethodPost, srv.URL+"/access/v1/evaluation", []byte(tc.body),
				map[string]string{"X-Request-ID": "r-1"})
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 200 && resp.Header.Get("X-Request-ID") != "r-1" {
				t.Errorf("X-Request-ID not echoed")
			}
			var got authzenResp
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got.Decision != tc.decision || string(got.Context.Reason) != tc.reason {
				t.Errorf("answer = %+v, want decision %v reason %s", got, tc.decision, tc.reason)
			}
			if _, ok := aud.Find(got.Context.DecisionID); !ok {
				t.Errorf("decision %s has no audit record", got.Context.DecisionID)
			}
		})
	}
}

func TestAuthZENEvaluationsSemantics(t *testing.T) {
	engine, _ := testEngine(t, authzenPolicy, "pdp/authz/decision")
	srv := startHTTP(t, Options{Engine: engine})
	const items = `"subject":{"type":"user","id":"alice"},"resource":{"type":"document","id":"d1"},
		"evaluations":[{"action":{"name":"read"}},{"action":{"name":"delete"}},
		{"action":{"name":"write"}},{"subject":{"type":"user","id":"bob"},"action":{"name":"read"}},{}]`
	cases := []struct {
		semantic string
		want     []bool
	}{
		{"", []bool{true, false, true, false, false}},
		{"execute_all", []bool{true, false, true, false, false}},
		{"deny_on_first_deny", []bool{true, false}},
		{"permit_on_first_permit", []bool{true}},
	}
	for _, tc := range cases {
		t.Run("semantic "+tc.semantic, func(t *testing.T) {
			body := `{` + items + `,"options":{"evaluations_semantic":"` + tc.semantic + `"}}`
			resp := doHTTP(t, http.MethodPost, srv.URL+"/access/v1/evaluations", []byte(body), nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d", resp.StatusCode)
			}
			var got struct {
				Evaluations []authzenResp `json:"evaluations"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			var decisions []bool
			for _, e := range got.Evaluations {
				decisions = append(decisions, e.Decision)
			}
			if len(decisions) != len(tc.want) {
				t.Fatalf("decisions = %v, want %v", decisions, tc.want)
			}
			for i := range decisions {
				if decisions[i] != tc.want[i] {
					t.Errorf("decision %d = %v, want %v", i, decisions[i], tc.want[i])
				}
			}
			if n := len(got.Evaluations); n == 5 && string(got.Evaluations[4].Context.Reason) != "request.invalid" {
				t.Errorf("item without action: reason %s, want request.invalid", got.Evaluations[4].Context.Reason)
			}
		})
	}

	t.Run("without evaluations", func(t *testing.T) {
		body := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"document","id":"d"}}`
		resp := doHTTP(t, http.MethodPost, srv.URL+"/access/v1/evaluations", []byte(body), nil)
		var got authzenResp
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if !got.Decision {
			t.Errorf("single-evaluation form = %+v, want decision true", got)
		}
	})
	t.Run("unknown semantic", func(t *testing.T) {
		body := `{` + items + `,"options":{"evaluations_semantic":"first"}}`
		if resp := doHTTP(t, http.MethodPost, srv.URL+"/access/v1/evaluations", []byte(body), nil); resp.StatusCode != 400 {
			t.Errorf("status = %d, want 400", resp.StatusCode)
		}
	})
}

func TestAuthZENConfiguration(t *testing.T) {
	engine, _ := testEngine(t, authzenPolicy, "pdp/authz/decision")
	srv := startHTTP(t, Options{Engine: engine, Gateway: Config{AuthZEN: AuthZENConfig{BaseURL: "https://pdp.example.test/"}}})
	resp := doHTTP(t, http.MethodGet, srv.URL+"/.well-known/authzen-configuration", nil, nil)
	var got map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"policy_decision_point":       "https://pdp.example.test",
		"access_evaluation_endpoint":  "https://pdp.example.test/access/v1/evaluation",
		"access_evaluations_endpoint": "https://pdp.example.test/access/v1/evaluations",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{}
	if err := good.Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	bad := Config{
		IdentityHeaders: IdentityHeaders{Subject: "x subject"},
		ExtAuthzPrefix:  "ext", NGINXPath: "/a/../b",
		AuthZEN: AuthZENConfig{BaseURL: "ftp://x"},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, key := range []string{"identity_headers.subject", "ext_authz_prefix", "nginx_path", "authzen.base_url"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}
