package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestDisabledIdentityHeaderStillRemoved(t *testing.T) {
	engine, _ := testEngine(t, "package pdp.authz\n\nallow := true\n", "data.pdp.authz.allow")
	gw := Config{IdentityHeaders: IdentityHeaders{Subject: "-"}}
	srv := startHTTP(t, Options{Engine: engine, Gateway: gw})

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/ext_authz/public/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Pdp-Subject", "evil")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	removed := resp.Header.Get("X-Envoy-Auth-Headers-To-Remove")
	if !strings.Contains(removed, DefaultSubjectHeader) {
		t.Errorf("headers to remove = %q, want %s although it is turned off", removed, DefaultSubjectHeader)
	}
	if got := resp.Header.Get("X-Pdp-Subject"); got != "" {
		t.Errorf("x-pdp-subject = %q, want it not set", got)
	}
}

func TestEnvoyHTTPTakesAnyMethod(t *testing.T) {
	policy := "package pdp.authz\n\nallow if input.attributes.request.http.method == \"PURGE\"\n"
	engine, aud := testEngine(t, policy, "data.pdp.authz.allow")
	srv := startHTTP(t, Options{Engine: engine})

	for method, want := range map[string]int{"PURGE": http.StatusOK, "MKCOL": http.StatusForbidden} {
		req, err := http.NewRequest(method, srv.URL+"/ext_authz/cache/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", method, resp.StatusCode, want)
		}
		if want != http.StatusOK {
			id := resp.Header.Get("X-Pdp-Decision-Id")
			if _, ok := aud.Find(id); !ok {
				t.Errorf("%s: decision %q has no audit record", method, id)
			}
		}
	}
}

func TestGRPCCheckHeaderLimits(t *testing.T) {
	engine, aud := testEngine(t, "package pdp.authz\n\nallow := true\n", "data.pdp.authz.allow")
	limits := NewLimits(LimitsConfig{MaxHeaderCount: 5}, LimitsOptions{})
	client := startGRPC(t, GRPCOptions{Engine: engine, Limits: limits})

	headers := map[string]string{}
	for i := 0; i < 10; i++ {
		headers[fmt.Sprintf("x-extra-%d", i)] = "v"
	}
	resp := check(t, client, orderRequest(headers))
	if code := codes.Code(resp.GetStatus().GetCode()); code != codes.PermissionDenied {
		t.Fatalf("status = %v, want PermissionDenied", code)
	}
	got := headerOptions(resp.GetDeniedResponse().GetHeaders())
	if reason := got["x-pdp-reason"]; len(reason) != 1 || reason[0] != "request.too_large" {
		t.Errorf("x-pdp-reason = %v, want request.too_large", reason)
	}
	ids := got["x-pdp-decision-id"]
	if len(ids) != 1 {
		t.Fatalf("x-pdp-decision-id = %v, want one id", ids)
	}
	if _, ok := aud.Find(ids[0]); !ok {
		t.Errorf("decision %s has no audit record", ids[0])
	}
}
