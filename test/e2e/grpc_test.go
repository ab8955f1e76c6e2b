package e2e

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// envoyCheck builds the CheckRequest Envoy sends for method and path.
func envoyCheck(method, path string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1",
				PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "req-1", Method: method, Path: path, Host: "api.example.test", Scheme: "http",
			Protocol: "HTTP/1.1", Headers: map[string]string{
				":method": method, ":path": path, "x-pdp-subject": "forged",
			},
		}},
	}}
}

func TestServeEnvoyGRPCCheck(t *testing.T) {
	s := startServer(t, "")
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{
		Service: "envoy.service.auth.v3.Authorization"})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v; want SERVING", health.GetStatus(), err)
	}

	client := authv3.NewAuthorizationClient(conn)
	allowed, err := client.Check(ctx, envoyCheck("GET", "/public/docs?page=2"))
	if err != nil {
		t.Fatalf("Check /public/docs: %v", err)
	}
	if code := codes.Code(allowed.GetStatus().GetCode()); code != codes.OK {
		t.Errorf("GET /public/docs: status %v, want OK", code)
	}
	removed := allowed.GetOkResponse().GetHeadersToRemove()
	if !contains(removed, "x-pdp-subject") {
		t.Errorf("headers to remove = %v, want the client's x-pdp-subject among them", removed)
	}

	for _, path := range []string{"/admin/x", "/admin/..%2Fpublic/x", "//admin/x"} {
		denied, err := client.Check(ctx, envoyCheck("GET", path))
		if err != nil {
			t.Fatalf("Check %s: gRPC error %v, want a denial CheckResponse", path, err)
		}
		if code := codes.Code(denied.GetStatus().GetCode()); code != codes.PermissionDenied {
			t.Errorf("GET %s: status %v, want PermissionDenied", path, code)
		}
		if denied.GetDeniedResponse() == nil {
			t.Errorf("GET %s: no DeniedHttpResponse", path)
		}
	}
}

func contains(list []string, want string) bool {
	for _, v := range list {
		if v == want {
			return true
		}
	}
	return false
}
