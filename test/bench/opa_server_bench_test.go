package bench

import (
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/authgate/pdp/policies"
)

// BenchmarkOPAServer is the baseline of BenchmarkFrontDoor/door=opa_rest:
// OPA's own server handler, in this process, handling the same POST
// /v1/data request on the shipped policy and data. Its store is set up as
// `opa run --server` sets it up without --optimize-store-for-read-speed.
func BenchmarkOPAServer(b *testing.B) {
	ctx := context.Background()
	benchDataPost(b, newOPAServer(b, ctx))
}

func newOPAServer(b *testing.B, ctx context.Context) http.Handler {
	b.Helper()
	var data map[string]any
	raw, err := policies.Bundle.ReadFile("data.json")
	if err != nil {
		b.Fatal(err)
	}
	if err := util.UnmarshalJSON(raw, &data); err != nil {
		b.Fatal(err)
	}
	store := inmem.NewFromObjectWithOpts(data, inmem.OptRoundTripOnWrite(false))
	module, err := policies.Bundle.ReadFile("authz.rego")
	if err != nil {
		b.Fatal(err)
	}
	err = storage.Txn(ctx, store, storage.WriteParams, func(txn storage.Transaction) error {
		return store.UpsertPolicy(ctx, txn, "authz.rego", module)
	})
	if err != nil {
		b.Fatal(err)
	}

	manager, err := plugins.New(nil, "bench", store)
	if err != nil {
		b.Fatal(err)
	}
	if err := manager.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { manager.Stop(ctx) })

	s, err := server.New().WithStore(store).WithManager(manager).
		WithAddresses([]string{"127.0.0.1:0"}).Init(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return s.Handler
}

// gatewayDataBody is the body of a POST /v1/data request whose input is
// bench/scenarios/gateway-input.json.
func gatewayDataBody(b *testing.B) []byte {
	b.Helper()
	input, err := os.ReadFile("../../bench/scenarios/gateway-input.json")
	if err != nil {
		b.Fatal(err)
	}
	return append(append([]byte(`{"input":`), input...), '}')
}
