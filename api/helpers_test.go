package api

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/test/gateway/regosource"
)

// testToken is the one bearer token fakeAuthenticator accepts.
const testToken = "good-token"

// fakeAuthenticator accepts testToken as alice of tenant t-1 and any
// gateway-asserted principal as a SPIFFE identity.
type fakeAuthenticator struct{}

func (fakeAuthenticator) VerifyToken(_ context.Context, token string, _ []string) (*pdp.Identity, error) {
	if token != testToken {
		return nil, pdp.Denyf(pdp.ReasonTokenInvalid, "unknown token")
	}
	return &pdp.Identity{Verified: true, Method: "jwt", Issuer: "https://idp.example.test",
		Subject: "alice", Tenant: "t-1"}, nil
}

func (fakeAuthenticator) VerifyPeer(_ context.Context, peer *pdp.Peer) (*pdp.Identity, error) {
	if peer.Principal == "" {
		return nil, pdp.Denyf(pdp.ReasonIdentityMissing, "no principal")
	}
	return &pdp.Identity{Verified: true, Method: "mtls", SpiffeID: peer.Principal}, nil
}

// testEngine compiles one Rego module and returns an engine whose routes
// verify a bearer token when one is present.
func testEngine(t *testing.T, module, entrypoint string) (*pdp.Engine, *regosource.Auditor) {
	t.Helper()
	policy, err := regosource.Compile(context.Background(), map[string]string{"policy.rego": module}, nil, entrypoint)
	if err != nil {
		t.Fatalf("compile policy: %v", err)
	}
	engine, aud, err := regosource.NewEngine(policy, pdp.Options{
		Authenticator: fakeAuthenticator{},
		Routes:        []pdp.Route{{Name: "token", Token: pdp.TokenRequirement{Issuers: []string{"idp"}}}},
	})
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	return engine, aud
}

// startGRPC serves NewGRPCServer on a loopback port and returns a client.
func startGRPC(t *testing.T, opts GRPCOptions) authv3.AuthorizationClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewGRPCServer(opts)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// startHTTP serves the HTTP API on a loopback port.
func startHTTP(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewServer(opts).Handler())
	t.Cleanup(srv.Close)
	return srv
}

func check(t *testing.T, client authv3.AuthorizationClient, cr *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Check(ctx, cr)
	if err != nil {
		t.Fatalf("Check returned a gRPC error: %v", err)
	}
	return resp
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func defaultConfig() *Config {
	cfg := (&Config{}).withDefaults()
	return &cfg
}

// testEngineModules is testEngine for several modules.
func testEngineModules(t *testing.T, modules map[string]string, entrypoint string) (*pdp.Engine, *regosource.Auditor) {
	t.Helper()
	policy, err := regosource.Compile(context.Background(), modules, nil, entrypoint)
	if err != nil {
		t.Fatalf("compile policy: %v", err)
	}
	engine, aud, err := regosource.NewEngine(policy, pdp.Options{Authenticator: fakeAuthenticator{}})
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	return engine, aud
}
