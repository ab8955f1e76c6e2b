package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

const grpcPolicy = `package envoy.authz

default result := {
	"allowed": false,
	"http_status": 429,
	"body": "slow down",
	"headers": {"x-deny": "1"},
	"dynamic_metadata": {"why": "default"},
}

result := {
	"allowed": true,
	"headers": {
		"x-user": object.get(input, ["identity", "subject"], "anonymous"),
		"x-pdp-subject": "set-by-policy",
	},
	"request_headers_to_remove": ["x-internal"],
	"response_headers_to_add": {"x-served": ["a", "b"]},
	"dynamic_metadata": {"path": input.pdp.normalized_path, "n": 3},
} if {
	input.attributes.request.http.method == "POST"
	input.parsed_path == ["orders", "42"]
	input.parsed_query.expand == ["items"]
	input.parsed_body.qty == 2
	input.version.ext_authz == "v3"
}

result := {"allowed": true} if {
	input.parsed_path == ["peer"]
	input.identity.spiffe_id == "spiffe://example.test/sa/caller"
	input.source_principal == "spiffe://example.test/sa/caller"
}

result := 7 if input.parsed_path == ["broken"]
`

// orderRequest is a CheckRequest as Envoy sends it for a POST with a JSON
// body, a query string and a client-supplied identity header.
func orderRequest(headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{
		":authority": "api.example.test", ":method": "POST", ":path": "/orders/42?expand=items",
		"content-type": "application/json", "content-length": "9", "x-pdp-subject": "mallory",
	}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.0.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "req-1", Method: "POST", Host: "api.example.test", Scheme: "https", Protocol: "HTTP/1.1",
			Path: "/orders/42?expand=items", Headers: h, Body: `{"qty":2}`, Size: 9,
		}},
	}}
}

func headerOptions(opts []*corev3.HeaderValueOption) map[string][]string {
	out := map[string][]string{}
	for _, o := range opts {
		out[o.GetHeader().GetKey()] = append(out[o.GetHeader().GetKey()], o.GetHeader().GetValue())
	}
	return out
}

func TestGRPCAllowWithIdentity(t *testing.T) {
	engine, aud := testEngine(t, grpcPolicy, "envoy/authz/result")
	client := startGRPC(t, GRPCOptions{Engine: engine})

	resp := check(t, client, orderRequest(map[string]string{"authorization": "Bearer " + testToken}))
	ok := resp.GetOkResponse()
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || ok == nil {
		t.Fatalf("status = %v, denied = %v, want OK", resp.GetStatus(), resp.GetDeniedResponse())
	}
	got := headerOptions(ok.GetHeaders())
	want := map[string][]string{"x-user": {"alice"}, "x-pdp-subject": {"alice"}, "x-pdp-tenant": {"t-1"},
		"x-pdp-issuer": {"https://idp.example.test"}, "x-pdp-decision-id": {resp.GetDynamicMetadata().AsMap()["decision_id"].(string)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("headers = %v, want %v", got, want)
	}
	for _, o := range ok.GetHeaders() {
		if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %s append action = %v, want OVERWRITE_IF_EXISTS_OR_ADD", o.GetHeader().GetKey(), o.GetAppendAction())
		}
	}
	if want := []string{"x-pdp-spiffe-id", "x-internal"}; !reflect.DeepEqual(ok.GetHeadersToRemove(), want) {
		t.Errorf("headers_to_remove = %v, want %v", ok.GetHeadersToRemove(), want)
	}
	if got := headerOptions(ok.GetResponseHeadersToAdd()); !reflect.DeepEqual(got, map[string][]string{"x-served": {"a", "b"}}) {
		t.Errorf("response_headers_to_add = %v", got)
	}
	md := resp.GetDynamicMetadata().AsMap()
	if md["path"] != "/orders/42" || md["n"] != float64(3) {
		t.Errorf("dynamic metadata = %v, want path and n", md)
	}
	if _, found := aud.Find(md["decision_id"].(string)); !found {
		t.Errorf("no audit record for decision %v", md["decision_id"])
	}
}

func TestGRPCAllowWithoutIdentityRemovesHeaders(t *testing.T) {
	engine, _ := testEngine(t, grpcPolicy, "envoy/authz/result")
	client := startGRPC(t, GRPCOptions{Engine: engine})

	resp := check(t, client, orderRequest(nil))
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("denied: %v", resp.GetDeniedResponse())
	}
	got := headerOptions(ok.GetHeaders())
	if got["x-user"][0] != "anonymous" {
		t.Errorf("x-user = %v, want anonymous", got["x-user"])
	}
	if _, ok := got["x-pdp-subject"]; ok {
		t.Errorf("x-pdp-subject is set to %v without a verified identity", got["x-pdp-subject"])
	}
	for _, name := range []string{"x-pdp-subject", "x-pdp-tenant", "x-pdp-issuer", "x-pdp-spiffe-id"} {
		if !contains(ok.GetHeadersToRemove(), name) {
			t.Errorf("headers_to_remove %v lacks %s", ok.GetHeadersToRemove(), name)
		}
	}
}

func contains(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}

func TestGRPCDenyCustomStatusBody(t *testing.T) {
	engine, _ := testEngine(t, grpcPolicy, "envoy/authz/result")
	client := startGRPC(t, GRPCOptions{Engine: engine})

	cr := orderRequest(nil)
	cr.Attributes.Request.Http.Method = "GET"
	resp := check(t, client, cr)
	denied := resp.GetDeniedResponse()
	if codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied || denied == nil {
		t.Fatalf("status = %v, want PERMISSION_DENIED with a denied response", resp.GetStatus())
	}
	if denied.GetStatus().GetCode() != 429 {
		t.Errorf("status = %d, want 429", denied.GetStatus().GetCode())
	}
	if denied.GetBody() != "slow down" {
		t.Errorf("body = %q, want the policy's body", denied.GetBody())
	}
	got := headerOptions(denied.GetHeaders())
	if ids := got["x-pdp-decision-id"]; len(ids) != 1 || ids[0] == "" {
		t.Errorf("x-pdp-decision-id = %v, want the decision id", ids)
	}
	delete(got, "x-pdp-decision-id")
	want := map[string][]string{"x-deny": {"1"}, "x-pdp-reason": {"policy.denied"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("headers = %v, want %v", got, want)
	}
	if md := resp.GetDynamicMetadata().AsMap(); md["why"] != "default" || md["decision_id"] == nil {
		t.Errorf("dynamic metadata = %v, want why and decision_id", md)
	}
}

func TestGRPCFailuresAreDenials(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*authv3.CheckRequest)
		maxBody int64
		status  int32
		reason  string
	}{
		{"policy error", func(cr *authv3.CheckRequest) {
			cr.Attributes.Request.Http.Path = "/broken"
		}, 0, 403, "policy.error"},
		{"bad token", func(cr *authv3.CheckRequest) {
			cr.Attributes.Request.Http.Headers["authorization"] = "Bearer forged"
		}, 0, 401, "token.invalid"},
		{"malformed JSON body", func(cr *authv3.CheckRequest) {
			cr.Attributes.Request.Http.Body = `{"qty":`
			cr.Attributes.Request.Http.Headers["content-length"] = "7"
		}, 0, 400, "request.invalid"},
		{"body too large", nil, 4, 413, "request.too_large"},
		{"bad percent-encoding", func(cr *authv3.CheckRequest) {
			cr.Attributes.Request.Http.Path = "/orders/%zz"
		}, 0, 400, "request.invalid"},
		{"no http attributes", func(cr *authv3.CheckRequest) {
			cr.Attributes.Request = nil
		}, 0, 400, "request.invalid"},
		{"malformed certificate", func(cr *authv3.CheckRequest) {
			cr.Attributes.Source.Certificate = "not-a-certificate"
		}, 0, 400, "request.invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			engine, aud := testEngine(t, grpcPolicy, "envoy/authz/result")
			client := startGRPC(t, GRPCOptions{Engine: engine, MaxBodyBytes: tc.maxBody})
			cr := orderRequest(nil)
			if tc.mutate != nil {
				tc.mutate(cr)
			}
			resp := check(t, client, cr)
			denied := resp.GetDeniedResponse()
			if codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied || denied == nil {
				t.Fatalf("status = %v, want PERMISSION_DENIED", resp.GetStatus())
			}
			if int32(denied.GetStatus().GetCode()) != tc.status {
				t.Errorf("http status = %d, want %d", denied.GetStatus().GetCode(), tc.status)
			}
			if got := headerOptions(denied.GetHeaders())["x-pdp-reason"]; len(got) != 1 || got[0] != tc.reason {
				t.Errorf("x-pdp-reason = %v, want %s", got, tc.reason)
			}
			var body errorBody
			if err := json.Unmarshal([]byte(denied.GetBody()), &body); err != nil || string(body.Reason) != tc.reason {
				t.Errorf("body = %q, want JSON with reason %s", denied.GetBody(), tc.reason)
			}
			if len(aud.Events()) != 1 {
				t.Errorf("audit records = %d, want 1", len(aud.Events()))
			}
		})
	}
}

func TestGRPCPeerCertificate(t *testing.T) {
	engine, _ := testEngine(t, grpcPolicy, "envoy/authz/result")
	client := startGRPC(t, GRPCOptions{Engine: engine})

	cr := orderRequest(nil)
	cr.Attributes.Request.Http.Path = "/peer"
	cr.Attributes.Source.Principal = "spiffe://example.test/sa/caller"
	cr.Attributes.Source.Certificate = url.QueryEscape(string(selfSignedPEM(t, "spiffe://example.test/sa/caller")))
	resp := check(t, client, cr)
	if resp.GetOkResponse() == nil {
		t.Fatalf("denied: %v", resp.GetDeniedResponse())
	}
	got := headerOptions(resp.GetOkResponse().GetHeaders())
	if got["x-pdp-spiffe-id"][0] != "spiffe://example.test/sa/caller" {
		t.Errorf("x-pdp-spiffe-id = %v", got["x-pdp-spiffe-id"])
	}

	req, err := defaultConfig().checkRequestToRequest(cr, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Peer.Certificates) != 1 || req.Peer.Certificates[0].URIs[0].String() != cr.Attributes.Source.Principal {
		t.Errorf("peer certificates = %v, want the forwarded leaf", req.Peer.Certificates)
	}
}

func selfSignedPEM(t *testing.T, uri string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(uri)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "caller"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestGRPCSignedMessageFromHeaders(t *testing.T) {
	cr := orderRequest(map[string]string{"webhook-signature": "v1,abc", "webhook-id": "msg_1"})
	req, err := defaultConfig().checkRequestToRequest(cr, 0)
	if err != nil {
		t.Fatal(err)
	}
	if req.Message == nil || string(req.Message.Body) != `{"qty":2}` || req.Message.Truncated {
		t.Fatalf("message = %+v, want the raw body, not truncated", req.Message)
	}
	if req.Message.Headers["webhook-id"] != "msg_1" {
		t.Errorf("message headers = %v", req.Message.Headers)
	}

	cr.Attributes.Request.Http.Headers["x-envoy-auth-partial-body"] = "true"
	req, _ = defaultConfig().checkRequestToRequest(cr, 0)
	if !req.Message.Truncated {
		t.Error("message from a partial body is not marked truncated")
	}
}

func TestGRPCHealthServing(t *testing.T) {
	engine, _ := testEngine(t, grpcPolicy, "envoy/authz/result")
	lisClient := startGRPCConn(t, GRPCOptions{Engine: engine})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(lisClient).Check(ctx,
		&healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, want SERVING", resp.GetStatus())
	}
}

func startGRPCConn(t *testing.T, opts GRPCOptions) *grpc.ClientConn {
	t.Helper()
	lis, err := netListen()
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
	return conn
}

func FuzzCheckRequestMapping(f *testing.F) {
	for _, cr := range []*authv3.CheckRequest{
		orderRequest(nil),
		orderRequest(map[string]string{"webhook-signature": "v1,x", "content-type": "multipart/form-data; boundary=b"}),
		{},
		{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Path: "//admin/%2e%2e/x?a=1", RawBody: []byte("a=1")},
		}}},
	} {
		b, err := proto.Marshal(cr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	cfg := defaultConfig()
	f.Fuzz(func(t *testing.T, data []byte) {
		var cr authv3.CheckRequest
		if proto.Unmarshal(data, &cr) != nil {
			return
		}
		req, err := cfg.checkRequestToRequest(&cr, 1<<16)
		if req == nil {
			t.Fatal("no request returned")
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "request.") {
				t.Fatalf("error %q has no request.* reason", err)
			}
			return
		}
		if req.Attributes == nil || req.HTTP == nil {
			t.Fatal("mapped request lacks attributes or HTTP")
		}
		if _, err := json.Marshal(req.Attributes); err != nil {
			t.Fatalf("attributes do not encode: %v", err)
		}
	})
}
