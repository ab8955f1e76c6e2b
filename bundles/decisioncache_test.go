package bundles

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/open-policy-agent/opa/v1/ast"
)

// compileTest compiles modules (file name -> Rego) into a revision.
func compileTest(t *testing.T, cacheSize int, modules map[string]string) *revision {
	t.Helper()
	m, _ := newTestManager(t, Config{Path: bundleDir(t, modules), Watch: noWatch, DecisionCacheSize: cacheSize})
	return m.active.Load()
}

func refStrings(refs []ast.Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out
}

func TestAnalyzeQuery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rego      string
		uncached  bool
		whole     bool
		values    []string
		truths    []string
		otherFile string
	}{{
		name: "paths through rules, functions and other packages",
		rego: `package pdp.authz
import data.lib
allow if {
	lib.is_admin(input.user.name)
	input.method == "GET"
	data.lib.team[input.user.team]
}`,
		otherFile: `package lib
is_admin(name) if name == input.admins[_]
team[t] := true if some t in input.teams`,
		values: []string{"admins", "method", "teams", "user.name", "user.team"},
	}, {
		name: "a value read covers the paths below it and tests of it",
		rego: `package pdp.authz
allow if {
	input.user.name == "a"
	x := input.user
	not input.user
	input.flag
}`,
		values: []string{"user"},
		truths: []string{"flag"},
	}, {
		name:   "array index and tested path",
		rego:   "package pdp.authz\nallow if {\n\tinput.path[0] == \"public\"\n\tnot input.attributes\n}",
		values: []string{"path[0]"},
		truths: []string{"attributes"},
	}, {
		name:  "bare input",
		rego:  "package pdp.authz\nallow if { x := input; x.a == 1 }",
		whole: true,
	}, {
		name:  "key chosen at evaluation time at the top level",
		rego:  "package pdp.authz\nallow if { some k; input[k] == 1 }",
		whole: true,
	}, {
		name:  "with modifier",
		rego:  "package pdp.authz\nallow if { inner with input.a as 1 }\ninner if input.a == 1",
		whole: true,
	}, {
		name:     "time.now_ns",
		rego:     "package pdp.authz\nallow if time.now_ns() > input.not_before",
		uncached: true,
	}, {
		name:     "io.jwt.decode_verify reads the clock",
		rego:     "package pdp.authz\nallow if { [ok, _, _] := io.jwt.decode_verify(input.token, {\"secret\": \"s\"}); ok }",
		uncached: true,
	}, {
		name:     "certificate verification reads the clock",
		rego:     "package pdp.authz\nallow if { [ok, _] := crypto.x509.parse_and_verify_certificates(input.chain); ok }",
		uncached: true,
	}, {
		name:     "a non-deterministic builtin swapped in with with",
		rego:     "package pdp.authz\nallow if { x := upper(input.u) with upper as uuid.rfc4122; x != \"\" }",
		uncached: true,
	}, {
		name:  "a deterministic builtin swapped in with with",
		rego:  "package pdp.authz\nallow if { x := upper(input.u) with upper as lower; x == \"a\" }",
		whole: true,
	}, {
		name:     "http.send in a called function",
		rego:     "package pdp.authz\nallow if fetch(input.url)\nfetch(u) if http.send({\"method\": \"GET\", \"url\": u}).status_code == 200",
		uncached: true,
	}, {
		name:   "an unreached rule does not count",
		rego:   "package pdp.authz\nallow if input.a == 1\nother if time.now_ns() > 0\nlooks if input.b",
		values: []string{"a"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"p.rego": tc.rego}
			if tc.otherFile != "" {
				files["lib.rego"] = tc.otherFile
			}
			rev := compileTest(t, 0, files)
			deps, ok := analyzeQuery(rev.compiler, ast.MustParseRef("data.pdp.authz.allow"))
			if ok == tc.uncached {
				t.Fatalf("cacheable = %v, want %v", ok, !tc.uncached)
			}
			if tc.uncached {
				return
			}
			if deps.whole != tc.whole {
				t.Fatalf("whole = %v, want %v (values %v)", deps.whole, tc.whole, refStrings(deps.values))
			}
			if got := refStrings(deps.values); !slices.Equal(got, tc.values) && len(got)+len(tc.values) > 0 {
				t.Errorf("values = %v, want %v", got, tc.values)
			}
			if got := refStrings(deps.truths); !slices.Equal(got, tc.truths) && len(got)+len(tc.truths) > 0 {
				t.Errorf("truths = %v, want %v", got, tc.truths)
			}
		})
	}
}

// TestDecisionCacheMatchesEvaluation evaluates random variations of the
// gateway input with the cache on and off and requires equal results,
// while most inputs differ only in parts the policy does not read.
func TestDecisionCacheMatchesEvaluation(t *testing.T) {
	cached := shippedPolicy(t, 64)
	uncached := shippedPolicy(t, -1)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(options ...any) any { return options[rng.IntN(len(options))] }

	for i := range 2000 {
		input := gatewayInput()
		http := input["attributes"].(map[string]any)["request"].(map[string]any)["http"].(map[string]any)
		http["headers"].(map[string]string)["x-request-id"] = fmt.Sprintf("r-%d", i)
		http["method"] = pick("GET", "POST", "DELETE", "PURGE")
		input["parsed_path"] = pick([]string{"tenants", "t-1", "docs"}, []string{"tenants", "t-2", "admin"},
			[]string{"public", "x"}, []string{"callbacks", "payments"})
		identity := input["identity"].(map[string]any)
		identity["verified"] = pick(true, false, nil)
		identity["tenant"] = pick("t-1", "t-2", "", nil)
		identity["claims"] = map[string]any{"roles": pick([]any{"reader"}, []any{"admin"}, []any{})}
		if rng.IntN(4) == 0 {
			delete(input, "attributes")
		}
		value := ast.MustInterfaceToValue(input)

		got, gotOK, err := cached.Eval(ctx, value)
		if err != nil {
			t.Fatal(err)
		}
		want, wantOK, err := uncached.Eval(ctx, value)
		if err != nil {
			t.Fatal(err)
		}
		if gotOK != wantOK || !reflect.DeepEqual(got, want) {
			t.Fatalf("input %d: cached result %v (%v), evaluated %v (%v)\ninput: %v", i, got, gotOK, want, wantOK, value)
		}
	}
	if n := cached.results.entries.Len(); n == 0 || n > 64 {
		t.Errorf("cache holds %d entries, want 1..64", n)
	}
}

func TestDecisionCacheHitsAcrossUnreadFields(t *testing.T) {
	rev := shippedPolicy(t, 16)
	ctx := context.Background()
	for i := range 10 {
		input := gatewayInput()
		headers := input["attributes"].(map[string]any)["request"].(map[string]any)["http"].(map[string]any)["headers"].(map[string]string)
		headers["x-request-id"] = fmt.Sprintf("r-%d", i)
		if _, _, err := rev.Eval(ctx, ast.MustInterfaceToValue(input)); err != nil {
			t.Fatal(err)
		}
	}
	if n := rev.results.entries.Len(); n != 1 {
		t.Errorf("10 inputs differing only in x-request-id made %d cache entries, want 1", n)
	}
	if hits, misses := rev.results.stats.Hits.Load(), rev.results.stats.Misses.Load(); hits != 9 || misses != 1 {
		t.Errorf("cache counted %d hits and %d misses, want 9 and 1", hits, misses)
	}

	// The policy reads the tenant, so a tenant change is a new entry with
	// its own result.
	input := gatewayInput()
	input["parsed_path"] = []string{"tenants", "t-2", "docs", "7"}
	result, _, err := rev.Eval(ctx, ast.MustInterfaceToValue(input))
	if err != nil {
		t.Fatal(err)
	}
	if result.(map[string]any)["allowed"] != false {
		t.Errorf("other tenant: result %v, want a denial", result)
	}
	if n := rev.results.entries.Len(); n != 2 {
		t.Errorf("after a second tenant the cache holds %d entries, want 2", n)
	}
}

func TestDecisionCacheSkipsClockPolicies(t *testing.T) {
	rev := compileTest(t, 0, map[string]string{"p.rego": `package pdp.authz
allow if time.now_ns() > input.after`})
	for range 3 {
		if _, _, err := rev.Eval(context.Background(), ast.MustInterfaceToValue(map[string]any{"after": 1})); err != nil {
			t.Fatal(err)
		}
	}
	if n := rev.results.entries.Len(); n != 0 {
		t.Errorf("a policy calling time.now_ns has %d cached results, want 0", n)
	}
}

func TestQueryUsesDecisionCache(t *testing.T) {
	rev := shippedPolicy(t, 16)
	ctx := context.Background()
	for _, path := range []string{"pdp/authz/decision", "pdp/authz/allow", "pdp/authz/decision"} {
		result, ok, err := rev.Query(ctx, path, gatewayInput())
		if err != nil || !ok {
			t.Fatalf("Query %s: %v, defined %v", path, err, ok)
		}
		if strings.HasSuffix(path, "allow") && result != true {
			t.Errorf("Query %s = %v, want true", path, result)
		}
	}
	if n := rev.results.entries.Len(); n != 2 {
		t.Errorf("two paths on one input made %d cache entries, want 2", n)
	}
}

func TestDecisionCacheSkipsLargeResults(t *testing.T) {
	big := make([]string, 2000)
	for i := range big {
		big[i] = fmt.Sprintf("%q", fmt.Sprintf("item-%d", i))
	}
	rev := compileTest(t, 0, map[string]string{
		"p.rego":    "package pdp.authz\nallow if input.a == 1\nbig := data.items if input.a == 1",
		"data.json": `{"items":[` + strings.Join(big, ",") + `]}`,
	})
	ctx := context.Background()
	for range 3 {
		if _, _, err := rev.Query(ctx, "pdp/authz/big", map[string]any{"a": 1}); err != nil {
			t.Fatal(err)
		}
	}
	if n := rev.results.entries.Len(); n != 0 {
		t.Errorf("a 2,000-item result was cached (%d entries), want it evaluated each time", n)
	}
	if _, _, err := rev.Query(ctx, "pdp/authz/allow", map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if n := rev.results.entries.Len(); n != 1 {
		t.Errorf("a boolean result made %d cache entries, want 1", n)
	}
}

func TestCloneWithinBudget(t *testing.T) {
	fits := func(v any) bool {
		_, ok := cloneWithin(v, maxCachedResult)
		return ok
	}
	small := map[string]any{"allowed": true, "reasons": []any{"a", "b"}, "headers": map[string]any{"x": "y"}}
	if !fits(small) {
		t.Error("a small decision object does not fit")
	}
	if fits(strings.Repeat("x", maxCachedResult)) {
		t.Error("a string as long as the budget fits")
	}
	deep := any(true)
	for range 1000 {
		deep = []any{deep}
	}
	if fits(deep) {
		t.Error("1,000 nested arrays fit")
	}
}

func TestCachedResultKeepsNoInputAlive(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	result := map[string]any{"head": big[:8], "list": []any{big[8:16]}, big[16:24]: json.Number("1")}
	cloned, ok := cloneWithin(result, maxCachedResult)
	if !ok {
		t.Fatal("a result of three short strings does not fit the budget")
	}
	copied := cloned.(map[string]any)
	if !reflect.DeepEqual(copied, result) {
		t.Fatalf("clone %v differs from %v", copied, result)
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(big)))
	shares := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return p >= start && p < start+uintptr(len(big))
	}
	if shares(copied["head"].(string)) || shares(copied["list"].([]any)[0].(string)) {
		t.Error("a cloned string still points into the input")
	}
	for k := range copied {
		if shares(k) {
			t.Errorf("cloned key %q still points into the input", k)
		}
	}
}

func TestEvalPanicBecomesError(t *testing.T) {
	rev := compileTest(t, -1, map[string]string{"p.rego": "package pdp.authz\nallow if input.n > 5"})
	// ast.Number does not check its text; OPA's comparison panics on a
	// number it cannot parse.
	input := ast.NewObject([2]*ast.Term{ast.StringTerm("n"), ast.NewTerm(ast.Number("1e9999999999"))})
	_, _, err := rev.Eval(context.Background(), input)
	if err == nil || !strings.Contains(err.Error(), "policy evaluation panicked") {
		t.Fatalf("Eval = %v, want the panic as an error", err)
	}
}
