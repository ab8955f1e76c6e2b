package bundles

import (
	"context"
	"log/slog"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/authgate/pdp/policies"
)

// gatewayInput is an input document as the engine builds it for an Envoy
// request with a verified token.
func gatewayInput() map[string]any {
	return map[string]any{
		"attributes": map[string]any{"request": map[string]any{"http": map[string]any{
			"method": "GET", "path": "/tenants/t-1/docs/7", "host": "api.example.test",
			"headers": map[string]string{"content-type": "application/json", "x-request-id": "r-1"},
		}}},
		"parsed_path":  []string{"tenants", "t-1", "docs", "7"},
		"parsed_query": map[string][]string{},
		"subject":      map[string]any{"type": "user", "id": "alice"},
		"action":       map[string]any{"name": "GET"},
		"resource":     map[string]any{"type": "route", "id": "/tenants/t-1/docs/7"},
		"context":      map[string]any{},
		"identity": map[string]any{
			"verified": true, "method": "jwt", "subject": "alice", "tenant": "t-1",
			"scopes": []string{"api:read"}, "claims": map[string]any{"roles": []any{"reader"}},
		},
		"pdp": map[string]any{"front_door": "envoy_grpc", "instance": "pdp-a", "bundle_revision": "2026-01-15.1"},
	}
}

// shippedPolicy returns the active revision of the embedded bundle, with
// the decision cache off for cacheSize -1.
func shippedPolicy(b testing.TB, cacheSize int) *revision {
	b.Helper()
	m, err := NewManager(Config{DecisionCacheSize: cacheSize},
		Options{Embedded: policies.Bundle, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Stop)
	return m.active.Load()
}

// BenchmarkEval measures one decision of the shipped policy, input
// conversion included. With cache=off every decision evaluates the policy,
// and with cache=hit the decision cache serves the repeated input.
func BenchmarkEval(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"cache=off", -1}, {"cache=hit", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			p := shippedPolicy(b, bc.size)
			input := gatewayInput()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				result, _, err := p.Eval(ctx, ast.MustInterfaceToValue(input))
				if err != nil {
					b.Fatal(err)
				}
				if result.(map[string]any)["allowed"] != true {
					b.Fatalf("result = %v, want allowed", result)
				}
			}
		})
	}
}

// BenchmarkEvalInputRoundTrip measures the same decision with
// rego.EvalInput, which round-trips the input through JSON, for
// comparison with the ast.InterfaceToValue path Eval uses.
func BenchmarkEvalInputRoundTrip(b *testing.B) {
	p := shippedPolicy(b, -1)
	input := gatewayInput()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rs, err := p.decision.eval.Eval(ctx, rego.EvalInput(input))
		if err != nil || len(rs) == 0 {
			b.Fatal(err)
		}
	}
}

// BenchmarkInputConversion isolates ast.InterfaceToValue on the input.
func BenchmarkInputConversion(b *testing.B) {
	input := gatewayInput()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ast.InterfaceToValue(input); err != nil {
			b.Fatal(err)
		}
	}
}
