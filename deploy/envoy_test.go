package deploy

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"

	// Registered for the typed_config entries of envoy.yaml.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// loadEnvoyBootstrap decodes envoy.yaml into Envoy's Bootstrap message,
// rejecting unknown fields, and runs the schema's validation rules.
func loadEnvoyBootstrap(t *testing.T) *bootstrapv3.Bootstrap {
	t.Helper()
	raw, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatalf("read envoy.yaml: %v", err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse envoy.yaml: %v", err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("convert envoy.yaml to JSON: %v", err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		t.Fatalf("envoy.yaml does not match the Bootstrap schema: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("envoy.yaml fails the schema's validation rules: %v", err)
	}
	return &b
}

func TestEnvoyConfigExtAuthz(t *testing.T) {
	b := loadEnvoyBootstrap(t)
	listeners := b.GetStaticResources().GetListeners()
	if len(listeners) != 1 {
		t.Fatalf("listeners = %d, want 1", len(listeners))
	}
	var hcm hcmv3.HttpConnectionManager
	filter := listeners[0].GetFilterChains()[0].GetFilters()[0]
	if err := filter.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatalf("decode http_connection_manager: %v", err)
	}

	var names []string
	var authz extauthzv3.ExtAuthz
	for _, f := range hcm.GetHttpFilters() {
		names = append(names, f.GetName())
		if f.GetName() == "envoy.filters.http.ext_authz" {
			if err := f.GetTypedConfig().UnmarshalTo(&authz); err != nil {
				t.Fatalf("decode ext_authz: %v", err)
			}
		}
	}
	wantOrder := "envoy.filters.http.header_mutation,envoy.filters.http.ext_authz,envoy.filters.http.router"
	if got := strings.Join(names, ","); got != wantOrder {
		t.Errorf("http filters = %s, want %s", got, wantOrder)
	}
	if authz.GetFailureModeAllow() {
		t.Error("ext_authz failure_mode_allow = true, want false (fail closed)")
	}
	if got := authz.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != "pdp" {
		t.Errorf("ext_authz cluster = %q, want pdp", got)
	}
	body := authz.GetWithRequestBody()
	if !body.GetPackAsBytes() {
		t.Error("with_request_body.pack_as_bytes = false, want true (raw signed bodies)")
	}
	if body.GetAllowPartialMessage() {
		t.Error("with_request_body.allow_partial_message = true, want false")
	}
	if got := body.GetMaxRequestBytes(); got == 0 || got >= 1<<20 {
		t.Errorf("with_request_body.max_request_bytes = %d, want below the PDP's 1 MiB body limit", got)
	}
}

func TestEnvoyConfigLoopbackOnly(t *testing.T) {
	b := loadEnvoyBootstrap(t)
	addrs := []string{b.GetAdmin().GetAddress().GetSocketAddress().GetAddress()}
	for _, l := range b.GetStaticResources().GetListeners() {
		addrs = append(addrs, l.GetAddress().GetSocketAddress().GetAddress())
	}
	ports := map[string]uint32{}
	for _, c := range b.GetStaticResources().GetClusters() {
		for _, e := range c.GetLoadAssignment().GetEndpoints() {
			for _, lb := range e.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				addrs = append(addrs, sa.GetAddress())
				ports[c.GetName()] = sa.GetPortValue()
			}
		}
	}
	for _, a := range addrs {
		if a != "127.0.0.1" {
			t.Errorf("address %q in envoy.yaml is not loopback", a)
		}
	}
	if ports["pdp"] != 9191 {
		t.Errorf("pdp cluster port = %d, want the PDP's gRPC port 9191", ports["pdp"])
	}
}
