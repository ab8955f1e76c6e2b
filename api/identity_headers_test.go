package api

import (
	"net/http"
	"strings"
	"testing"
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
