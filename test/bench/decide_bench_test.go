// Package bench holds Go micro-benchmarks of the decision pipeline. It
// contains benchmarks only, so `go test ./...` stays fast. Run them with
//
//	go test -run '^$' -bench . -benchmem -count 6 ./test/bench/
//
// and compare two runs with benchstat. The load harness that measures the
// running server lives in bench/cmd/loadbench.
package bench

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/authgate/pdp/audit"
	"github.com/authgate/pdp/bundles"
	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/policies"
)

// parallelism is the number of goroutines per GOMAXPROCS in the parallel
// benchmarks. With durability batch a decision waits for its fsync, so
// one goroutine per core would measure one fsync per decision. With 16
// per core the group commit shares each fsync, as concurrent HTTP
// requests do.
const parallelism = 16

// requests are the benchmarked request shapes, all allowed by the shipped
// policy.
var requests = []struct {
	name string
	req  func() *pdp.Request
}{
	{"direct", directRequest},
	{"gateway", gatewayRequest},
}

// directRequest is an AuthZEN call on the direct API.
func directRequest() *pdp.Request {
	return &pdp.Request{
		FrontDoor: pdp.FrontDoorDirect,
		Subject: pdp.Subject{Type: "user", ID: "alice", Properties: map[string]any{
			"roles": []any{"reader"}, "tenant": "t-42",
		}},
		Action:   pdp.Action{Name: "read"},
		Resource: pdp.Resource{Type: "document", ID: "d-1", Properties: map[string]any{"tenant": "t-42"}},
	}
}

// gatewayRequest is a GET that a gateway forwarded. The roles come from
// the subject properties, so no token and no key material are needed.
func gatewayRequest() *pdp.Request {
	return &pdp.Request{
		FrontDoor: pdp.FrontDoorEnvoyHTTP,
		Subject: pdp.Subject{Type: "user", ID: "alice", Properties: map[string]any{
			"roles": []any{"reader"}, "tenant": "t-42",
		}},
		HTTP: &pdp.HTTPRequest{
			Method: "GET", Scheme: "https", Host: "api.example.test", Protocol: "HTTP/1.1",
			Path: "/tenants/t-42/documents/d-1?fields=title&fields=owner",
			Headers: map[string]string{
				"accept":       "application/json",
				"user-agent":   "bench/1",
				"x-request-id": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
			},
			Size: -1, SourceAddress: "127.0.0.1", SourcePort: 50000,
		},
	}
}

// newEngine returns an engine on the shipped bundle with an audit log in a
// fresh temporary directory.
func newEngine(b *testing.B, durability audit.Durability) *pdp.Engine {
	b.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	manager, err := bundles.NewManager(bundles.Config{}, bundles.Options{
		Logger: log, Embedded: policies.Bundle,
	})
	if err != nil {
		b.Fatalf("new bundle manager: %v", err)
	}
	if err := manager.Start(ctx); err != nil {
		b.Fatalf("start bundle manager: %v", err)
	}
	b.Cleanup(manager.Stop)

	auditLog, err := audit.Open(audit.Config{
		Dir: b.TempDir(), Durability: durability,
		// Checkpoints are signed every 1,000 records by default; they are
		// part of the audit cost and stay on.
	}, audit.Options{Instance: "bench", Logger: log})
	if err != nil {
		b.Fatalf("open audit log: %v", err)
	}
	b.Cleanup(func() {
		if err := auditLog.Close(); err != nil {
			b.Errorf("close audit log: %v", err)
		}
	})

	engine, err := pdp.New(pdp.Options{
		Policies: manager, Auditor: auditLog, Instance: "bench", Logger: log,
		Routes: []pdp.Route{{Name: "default"}},
	})
	if err != nil {
		b.Fatalf("new engine: %v", err)
	}
	return engine
}

// BenchmarkDecide measures one whole decision (route, input, policy,
// audit) with the shipped policy. Sub-benchmark names are key=value pairs
// so benchstat can group them: audit is the durability level, request the
// request shape, mode serial (one goroutine) or parallel.
func BenchmarkDecide(b *testing.B) {
	for _, durability := range []audit.Durability{audit.DurabilityNone, audit.DurabilityBatch} {
		for _, rq := range requests {
			b.Run("audit="+string(durability)+"/request="+rq.name+"/mode=parallel", func(b *testing.B) {
				engine := newEngine(b, durability)
				checkAllowed(b, engine, rq.req())
				b.SetParallelism(parallelism)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						engine.Decide(ctx, rq.req())
					}
				})
			})
		}
		if durability == audit.DurabilityNone {
			b.Run("audit=none/request=direct/mode=serial", func(b *testing.B) {
				engine := newEngine(b, durability)
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					engine.Decide(ctx, directRequest())
				}
			})
		}
	}
}

// checkAllowed fails the benchmark when req is not allowed, so a policy or
// wiring change cannot turn it into a benchmark of the deny path.
func checkAllowed(b *testing.B, engine *pdp.Engine, req *pdp.Request) {
	b.Helper()
	d := engine.Decide(context.Background(), req)
	if !d.Allow {
		b.Fatalf("request denied with reason %s, want allowed", d.Reason)
	}
}

// BenchmarkPolicyEval measures the active revision's Eval alone (the input
// conversion to an ast.Value and the prepared query of the shipped
// policy), with the input the engine builds for a direct request.
func BenchmarkPolicyEval(b *testing.B) {
	manager, err := bundles.NewManager(bundles.Config{}, bundles.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Embedded: policies.Bundle,
	})
	if err != nil {
		b.Fatalf("new bundle manager: %v", err)
	}
	if err := manager.Start(context.Background()); err != nil {
		b.Fatalf("start bundle manager: %v", err)
	}
	b.Cleanup(manager.Stop)
	policy := manager.Active()
	ctx := context.Background()

	b.ReportAllocs()
	for b.Loop() {
		_, defined, err := policy.Eval(ctx, ast.MustInterfaceToValue(directInput()))
		if err != nil || !defined {
			b.Fatalf("eval: defined=%v err=%v", defined, err)
		}
	}
}

// BenchmarkInputDigest measures what the engine spends on the audit
// record's input digest. method=json copies the engine's method (the
// function is unexported): encoding/json of the whole input map, whose
// map keys it sorts by reflection, then SHA-256. method=ast hashes the
// string form of the ast.Value that evaluation needs anyway, whose object
// keys are sorted, as an estimate of a digest taken from that value.
func BenchmarkInputDigest(b *testing.B) {
	b.Run("method=json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raw, err := json.Marshal(gatewayInput())
			if err != nil {
				b.Fatal(err)
			}
			_ = sha256.Sum256(raw)
		}
	})
	b.Run("method=ast", func(b *testing.B) {
		value, err := ast.InterfaceToValue(gatewayInput())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			_ = sha256.Sum256([]byte(value.String()))
		}
	})
}

// BenchmarkInputToValue measures the conversion of the Go input map into
// OPA's ast.Value before each evaluation. shape=engine has the Go types
// the engine puts into the input (a struct for the identity, a
// map[string][]string for the query), which OPA converts with a JSON round
// trip; shape=native has the same document built from map[string]any and
// []any only, which OPA converts directly.
func BenchmarkInputToValue(b *testing.B) {
	for _, shape := range []struct {
		name  string
		input func() map[string]any
	}{
		{"engine", gatewayInput},
		{"native", nativeGatewayInput},
	} {
		b.Run("shape="+shape.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ast.InterfaceToValue(shape.input()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// identity mirrors the verified identity the engine adds as a struct.
type identity struct {
	Verified bool           `json:"verified"`
	Method   string         `json:"method"`
	Issuer   string         `json:"issuer"`
	Subject  string         `json:"subject"`
	Audience []string       `json:"audience"`
	Scopes   []string       `json:"scopes"`
	Tenant   string         `json:"tenant"`
	Claims   map[string]any `json:"claims"`
}

// gatewayInput is an input document for a gateway request with a verified
// token, with the Go types the engine uses for each part.
func gatewayInput() map[string]any {
	in := directInput()
	in["attributes"] = map[string]any{"request": map[string]any{"http": map[string]any{
		"method": "GET", "path": "/tenants/t-42/documents/d-1?fields=title", "host": "api.example.test",
		"headers": map[string]string{"accept": "application/json", "user-agent": "bench/1",
			"x-request-id": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"},
	}}}
	in["parsed_path"] = []string{"tenants", "t-42", "documents", "d-1"}
	in["parsed_query"] = map[string][]string{"fields": {"title"}}
	in["identity"] = &identity{
		Verified: true, Method: "jwt", Issuer: "https://issuer.bench.test", Subject: "alice",
		Audience: []string{"pdp"}, Scopes: []string{"api:read"}, Tenant: "t-42",
		Claims: map[string]any{"sub": "alice", "roles": []any{"reader"}, "tenant": "t-42"},
	}
	return in
}

// nativeGatewayInput is gatewayInput built from map[string]any and []any
// only.
func nativeGatewayInput() map[string]any {
	in := directInput()
	in["attributes"] = map[string]any{"request": map[string]any{"http": map[string]any{
		"method": "GET", "path": "/tenants/t-42/documents/d-1?fields=title", "host": "api.example.test",
		"headers": map[string]any{"accept": "application/json", "user-agent": "bench/1",
			"x-request-id": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"},
	}}}
	in["parsed_path"] = []any{"tenants", "t-42", "documents", "d-1"}
	in["parsed_query"] = map[string]any{"fields": []any{"title"}}
	in["identity"] = map[string]any{
		"verified": true, "method": "jwt", "issuer": "https://issuer.bench.test", "subject": "alice",
		"audience": []any{"pdp"}, "scopes": []any{"api:read"}, "tenant": "t-42",
		"claims": map[string]any{"sub": "alice", "roles": []any{"reader"}, "tenant": "t-42"},
	}
	return in
}

// directInput is the input document the engine builds for directRequest.
func directInput() map[string]any {
	return map[string]any{
		"subject": map[string]any{"type": "user", "id": "alice", "properties": map[string]any{
			"roles": []any{"reader"}, "tenant": "t-42",
		}},
		"action":   map[string]any{"name": "read"},
		"resource": map[string]any{"type": "document", "id": "d-1", "properties": map[string]any{"tenant": "t-42"}},
		"context":  map[string]any{},
		"pdp": map[string]any{
			"front_door": "direct", "instance": "bench", "bundle_revision": "bench",
			"decision_id": "01JF3Q6W1Z8J6K2V9D1X7N4M2P", "route": "default",
			"time": time.Unix(1764849600, 0).UTC().Format(time.RFC3339Nano),
		},
	}
}
