package bench

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/authgate/pdp/api"
	"github.com/authgate/pdp/audit"
)

// publicPath is allowed by the shipped policy without any identity, so the
// front door benchmarks need no token.
const publicPath = "/public/documents/d-1?fields=title"

// BenchmarkFrontDoor measures one allowed decision through a front door:
// door=grpc is Envoy's ext_authz Check over an in-memory gRPC connection,
// door=http is POST /v1/decision through the echo handler without a
// socket. Both carry the same GET request and use audit durability none,
// so the difference is the adapter's own cost.
func BenchmarkFrontDoor(b *testing.B) {
	b.Run("door=grpc", func(b *testing.B) {
		client := newCheckClient(b)
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{
				Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50000},
				}},
			}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: publicPath, Host: "api.example.test", Scheme: "https",
				Protocol: "HTTP/1.1", Headers: map[string]string{
					"accept": "application/json", "user-agent": "bench/1",
					"x-request-id": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
				},
			}},
		}}
		resp, err := client.Check(context.Background(), req)
		if err != nil {
			b.Fatalf("Check: %v", err)
		}
		if code := codes.Code(resp.GetStatus().GetCode()); code != codes.OK {
			b.Fatalf("Check status %s, want OK (allowed)", code)
		}

		b.SetParallelism(parallelism)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				if _, err := client.Check(ctx, req); err != nil {
					b.Errorf("Check: %v", err)
					return
				}
			}
		})
	})

	b.Run("door=http", func(b *testing.B) {
		handler := api.NewServer(api.Options{
			Engine: newEngine(b, audit.DurabilityNone), Logger: discardLogger(),
		}).Handler()
		body := []byte(`{"http":{"method":"GET","path":"` + publicPath + `","host":"api.example.test",` +
			`"scheme":"https","protocol":"HTTP/1.1","source_address":"127.0.0.1","headers":{` +
			`"accept":"application/json","user-agent":"bench/1",` +
			`"x-request-id":"9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"}}}`)
		if rec := postDecision(handler, body); !bytes.Contains(rec.Body.Bytes(), []byte(`"allow":true`)) {
			b.Fatalf("POST /v1/decision returned %d, want an allow", rec.Code)
		}

		b.SetParallelism(parallelism)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				postDecision(handler, body)
			}
		})
	})

	b.Run("door=opa_rest", func(b *testing.B) {
		handler := api.NewServer(api.Options{
			Engine: newEngine(b, audit.DurabilityNone), Logger: discardLogger(),
		}).Handler()
		benchDataPost(b, handler)
	})
}

// benchDataPost checks that handler allows the gateway input on POST
// /v1/data/pdp/authz/decision, then measures that request in parallel.
func benchDataPost(b *testing.B, handler http.Handler) {
	body := gatewayDataBody(b)
	const path = "/v1/data/pdp/authz/decision"
	if rec := post(handler, path, body); !bytes.Contains(rec.Body.Bytes(), []byte(`"allowed":true`)) {
		b.Fatalf("POST %s returned %d %s, want an allow", path, rec.Code, rec.Body)
	}

	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			post(handler, path, body)
		}
	})
}

func post(handler http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	return rec
}

func postDecision(handler http.Handler, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/decision", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	return rec
}

// newCheckClient serves the ext_authz gRPC service on an in-memory
// listener and returns a client connected to it.
func newCheckClient(b *testing.B) authv3.AuthorizationClient {
	b.Helper()
	listener := bufconn.Listen(1 << 20)
	server := api.NewGRPCServer(api.GRPCOptions{
		Engine: newEngine(b, audit.DurabilityNone), Logger: discardLogger(),
	})
	go func() { _ = server.Serve(listener) }()
	b.Cleanup(server.Stop)

	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return listener.DialContext(ctx)
		}),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	b.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
