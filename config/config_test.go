package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pdp.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.HTTP.Addr != DefaultHTTPAddr {
		t.Errorf("http.addr = %q, want %q", cfg.HTTP.Addr, DefaultHTTPAddr)
	}
	if cfg.GRPC.Addr != DefaultGRPCAddr {
		t.Errorf("grpc.addr = %q, want %q", cfg.GRPC.Addr, DefaultGRPCAddr)
	}
	if len(cfg.Routes) != 1 || cfg.Routes[0].Name != "default" {
		t.Errorf("routes = %+v, want one catch-all route", cfg.Routes)
	}
}

func TestLoadFileAndEnvOverride(t *testing.T) {
	path := writeConfig(t, `
http:
  addr: 127.0.0.1:9000
policy_timeout: 250ms
routes:
  - name: callbacks
    paths: ["/callbacks/**"]
    message: {required: true}
`)
	cfg, err := Load(path, []string{
		"PDP_HTTP_ADDR=127.0.0.1:9001",
		"PDP_HTTP_MAX_BODY_BYTES=2048",
		"PDP_POLICY_TIMEOUT=1s",
		"PDP_LOG_LEVEL=debug",
		"HOME=/root",
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:9001" {
		t.Errorf("http.addr = %q, want the environment value", cfg.HTTP.Addr)
	}
	if cfg.HTTP.MaxBodyBytes != 2048 {
		t.Errorf("http.max_body_bytes = %d, want 2048", cfg.HTTP.MaxBodyBytes)
	}
	if cfg.PolicyTimeout != time.Second {
		t.Errorf("policy_timeout = %s, want 1s", cfg.PolicyTimeout)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("log.level = %q, want debug", cfg.Log.Level)
	}
	if len(cfg.Routes) != 1 || !cfg.Routes[0].Message.Required {
		t.Errorf("routes = %+v, want the file's callbacks route", cfg.Routes)
	}
}

func TestLoadRejectsUnknownKey(t *testing.T) {
	path := writeConfig(t, "http:\n  adress: 127.0.0.1:1\n")
	_, err := Load(path, nil)
	if err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("Load error = %v, want one naming the unknown key", err)
	}
}

func TestLoadRejectsUnknownEnv(t *testing.T) {
	_, err := Load("", []string{"PDP_HTTP_ADRESS=x"})
	if err == nil || !strings.Contains(err.Error(), "PDP_HTTP_ADRESS") {
		t.Fatalf("Load error = %v, want one naming the variable", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	path := writeConfig(t, `
http: {max_body_bytes: -1}
log: {level: loud, format: xml}
unmatched: allow
routes:
  - name: bad
    paths: ["no-slash", "/a/**/b"]
`)
	_, err := Load(path, nil)
	if err == nil {
		t.Fatal("Load succeeded, want validation errors")
	}
	for _, key := range []string{"http.max_body_bytes", "log.level", "log.format", "unmatched", "routes[0]"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
}

func TestValidateRouteReferences(t *testing.T) {
	path := writeConfig(t, `
routes:
  - name: api
    token: {required: true, issuers: [nope]}
  - name: callbacks
    message: {required: true, senders: [ghost]}
`)
	_, err := Load(path, nil)
	if err == nil {
		t.Fatal("Load succeeded, want errors for unknown issuer and sender")
	}
	for _, want := range []string{`routes[0].token.issuers[0]`, `"nope"`, `routes[1].message.senders[0]`, `"ghost"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %s:\n%v", want, err)
		}
	}
}
