package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
)

const restPolicy = `package example

default allow := false

allow if input.user == "alice"

roles := {"alice": ["admin"], "bob": ["reader"]}

count_in := count(input.items) if input.items

echo := input

package system

main := {"ok": input.user}
`

// opaResult evaluates query with OPA's rego package, the reference the
// REST API must match.
func opaResult(t *testing.T, query string, input any) (any, bool) {
	t.Helper()
	mods := strings.SplitAfter(restPolicy, "\n\npackage system")
	opts := []func(*rego.Rego){
		rego.Query(query),
		rego.Module("example.rego", strings.TrimSuffix(mods[0], "\n\npackage system")),
		rego.Module("system.rego", "package system"+mods[1]),
	}
	if input != nil {
		opts = append(opts, rego.Input(input))
	}
	rs, err := rego.New(opts...).Eval(context.Background())
	if err != nil {
		t.Fatalf("reference eval %s: %v", query, err)
	}
	if len(rs) == 0 {
		return nil, false
	}
	return rs[0].Expressions[0].Value, true
}

func restEngine(t *testing.T) (*httpTestServer, func(string) bool) {
	t.Helper()
	parts := strings.SplitAfter(restPolicy, "\n\npackage system")
	engine, aud := testEngineModules(t, map[string]string{
		"example.rego": strings.TrimSuffix(parts[0], "\n\npackage system"),
		"system.rego":  "package system" + parts[1],
	}, "example/allow")
	srv := startHTTP(t, Options{Engine: engine})
	return &httpTestServer{url: srv.URL}, func(id string) bool { _, ok := aud.Find(id); return ok }
}

type httpTestServer struct{ url string }

func TestOPARestMatchesRego(t *testing.T) {
	srv, audited := restEngine(t)
	cases := []struct {
		name, method, path, body string
		query                    string
		input                    any
	}{
		{"post allow", "POST", "/v1/data/example/allow", `{"input":{"user":"alice"}}`, "data.example.allow", map[string]any{"user": "alice"}},
		{"post deny", "POST", "/v1/data/example/allow", `{"input":{"user":"bob"}}`, "data.example.allow", map[string]any{"user": "bob"}},
		{"post object", "POST", "/v1/data/example/roles", `{"input":{}}`, "data.example.roles", map[string]any{}},
		{"post index", "POST", "/v1/data/example/roles/alice/0", `{"input":{}}`, `data.example.roles.alice[0]`, map[string]any{}},
		{"post undefined", "POST", "/v1/data/example/count_in", `{"input":{"user":"x"}}`, "data.example.count_in", map[string]any{"user": "x"}},
		{"post number", "POST", "/v1/data/example/count_in", `{"input":{"items":[1,2,3]}}`, "data.example.count_in", map[string]any{"items": []any{1, 2, 3}}},
		{"get with input", "GET", "/v1/data/example/allow?input=" + url.QueryEscape(`{"user":"alice"}`), "", "data.example.allow", map[string]any{"user": "alice"}},
		{"get without input", "GET", "/v1/data/example/allow", "", "data.example.allow", nil},
		{"post whole package", "POST", "/v1/data/example", `{"input":{"user":"alice"}}`, "data.example", map[string]any{"user": "alice"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := doHTTP(t, tc.method, srv.url+tc.path, []byte(tc.body), map[string]string{"Content-Type": "application/json"})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			var got map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			want, defined := opaResult(t, tc.query, tc.input)
			gotResult, has := got["result"]
			if has != defined {
				t.Fatalf("result present = %v, OPA defined = %v (body %v)", has, defined, got)
			}
			if defined {
				if err := sameJSONValue(gotResult, want); err != "" {
					t.Errorf("result = %v, OPA = %v", gotResult, want)
				}
			}
			id, _ := got["decision_id"].(string)
			if id == "" || !audited(id) {
				t.Errorf("decision_id %q has no audit record", id)
			}
		})
	}
}

func sameJSONValue(a, b any) string {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var x, y any
	_ = json.Unmarshal(ja, &x)
	_ = json.Unmarshal(jb, &y)
	if reflect.DeepEqual(x, y) {
		return ""
	}
	return string(ja) + " != " + string(jb)
}

func TestOPARestErrorsAndWarnings(t *testing.T) {
	srv, _ := restEngine(t)
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
		check                    func(t *testing.T, body map[string]any)
	}{
		{"malformed body", "POST", "/v1/data/example/allow", `{"input":`, 400, "invalid_parameter", nil},
		{"malformed GET input", "GET", "/v1/data/example/allow?input=%7B", "", 400, "invalid_parameter", nil},
		{"quote in path", "POST", "/v1/data/example/%22x", `{}`, 400, "invalid_parameter", nil},
		{"missing input warns", "POST", "/v1/data/example/allow", ``, 200, "", func(t *testing.T, body map[string]any) {
			w, _ := body["warning"].(map[string]any)
			if w["code"] != "api_usage_warning" {
				t.Errorf("warning = %v, want api_usage_warning", body["warning"])
			}
		}},
		{"null body warns", "POST", "/v1/data/example/allow", `null`, 200, "", func(t *testing.T, body map[string]any) {
			if body["warning"] == nil {
				t.Errorf("body = %v, want api_usage_warning", body)
			}
		}},
		{"input key in other case", "POST", "/v1/data/example/echo", `{"input":{"a":1},"INPUT":{"a":2}}`, 200, "",
			func(t *testing.T, body map[string]any) {
				if r, _ := body["result"].(map[string]any); r["a"] != 2.0 {
					t.Errorf("result = %v, want the last input member {\"a\": 2}", body["result"])
				}
			}},
		{"GET input null", "GET", "/v1/data/example/echo?input=null", "", 200, "", func(t *testing.T, body map[string]any) {
			if r, ok := body["result"]; !ok || r != nil {
				t.Errorf("body = %v, want result null", body)
			}
		}},
		{"default decision", "POST", "/", `{"user":"carol"}`, 200, "", func(t *testing.T, body map[string]any) {
			if body["ok"] != "carol" {
				t.Errorf("body = %v, want the bare result of data.system.main", body)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := doHTTP(t, tc.method, srv.url+tc.path, []byte(tc.body), nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if tc.code != "" && body["code"] != tc.code {
				t.Errorf("code = %v, want %s", body["code"], tc.code)
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}
}

func TestOPARestDefaultDecisionEmptyBodyIsNull(t *testing.T) {
	engine, _ := testEngine(t, "package system\n\nmain := input\n", "system/main")
	srv := startHTTP(t, Options{Engine: engine})
	resp := doHTTP(t, "POST", srv.URL+"/", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	var body any = "unset"
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body != nil {
		t.Errorf("body = %v, want null: OPA evaluates an empty body as a null input", body)
	}
}

func TestOPARestDefaultDecisionUndefined(t *testing.T) {
	engine, _ := testEngine(t, "package other\n\nx := 1\n", "other/x")
	srv := startHTTP(t, Options{Engine: engine})
	resp := doHTTP(t, "POST", srv.URL+"/", []byte(`{}`), nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status = %d, want 404", resp.StatusCode)
	}
	var body opaError
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Code != "undefined_document" || body.Message != "document missing: data.system.main" {
		t.Errorf("body = %+v, want OPA's undefined_document", body)
	}
}
