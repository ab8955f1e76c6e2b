package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	aliceSameTenant = `{"subject":{"type":"user","id":"alice","properties":{"roles":["reader"],"tenant":"t-1"}},` +
		`"action":{"name":"read"},"resource":{"type":"document","id":"d-1","properties":{"tenant":"t-1"}}}`
	aliceOtherTenant = `{"subject":{"type":"user","id":"alice","properties":{"roles":["reader"],"tenant":"t-1"}},` +
		`"action":{"name":"read"},"resource":{"type":"document","id":"d-1","properties":{"tenant":"t-2"}}}`
)

func TestServeShippedBundle(t *testing.T) {
	s := startServer(t, "", "PDP_HTTP_MAX_BODY_BYTES=4096")

	status, d := s.decide(aliceSameTenant)
	if status != http.StatusOK || !d.Allow || d.Reason != "policy.allowed" {
		t.Errorf("same tenant: status %d, %+v; want 200 allow policy.allowed", status, d)
	}
	if d.BundleRevision == "" || d.ID == "" {
		t.Errorf("same tenant: decision lacks id or revision: %+v", d)
	}

	status, d = s.decide(aliceOtherTenant)
	if status != http.StatusOK || d.Allow || d.Reason != "policy.denied" {
		t.Errorf("other tenant: status %d, %+v; want 200 deny policy.denied", status, d)
	}

	// A repeated question is answered from the decision cache.
	for range 2 {
		if status, d := s.decide(aliceSameTenant); status != http.StatusOK || !d.Allow {
			t.Errorf("repeated same tenant: status %d, %+v; want 200 allow", status, d)
		}
	}
	if hits := s.metric("pdp_decision_cache_hits_total"); hits < 2 {
		t.Errorf("pdp_decision_cache_hits_total = %v after two repeated decisions, want at least 2", hits)
	}
	if misses := s.metric("pdp_decision_cache_misses_total"); misses < 2 {
		t.Errorf("pdp_decision_cache_misses_total = %v after two different decisions, want at least 2", misses)
	}
	if !strings.Contains(s.stderr.String(), `"msg":"garbage collector set","gc_percent":400`) {
		t.Errorf("startup log lacks the garbage collector settings:\n%s", s.stderr)
	}

	status, d = s.decide(`{"subject": {`)
	if status != http.StatusBadRequest || d.Reason != "request.invalid" || d.ID == "" {
		t.Errorf("broken JSON: status %d, %+v; want 400 request.invalid with an id", status, d)
	}

	status, d = s.decide(`{"context":{"pad":"` + strings.Repeat("x", 8192) + `"}}`)
	if status != http.StatusRequestEntityTooLarge || d.Reason != "request.too_large" {
		t.Errorf("oversized body: status %d, %+v; want 413 request.too_large", status, d)
	}

	status, d = s.decide(`null`)
	if status != http.StatusBadRequest || d.Reason != "request.invalid" {
		t.Errorf("null body: status %d, %+v; want 400 request.invalid", status, d)
	}

	status, d = s.decide(`{"subject":{"id":"a"},"unknown_field":1}`)
	if status != http.StatusBadRequest || d.Reason != "request.invalid" {
		t.Errorf("unknown field: status %d, %+v; want 400 request.invalid", status, d)
	}

	if err := s.stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v, want status 0\n%s", err, s.stderr)
	}

	files, _ := filepath.Glob(filepath.Join(s.auditDir, "audit-*.jsonl"))
	if len(files) == 0 {
		t.Fatalf("no audit files in %s", s.auditDir)
	}
	out, err := runPDP(t, append([]string{"audit", "verify"}, files...)...)
	if err != nil {
		t.Fatalf("pdp audit verify: %v\n%s", err, out)
	}
}

// writeBundle writes a bundle directory with one policy file.
func writeBundle(t *testing.T, dir, revision, policy string) {
	t.Helper()
	manifest := `{"revision":"` + revision + `","roots":["pdp"]}`
	if err := os.WriteFile(filepath.Join(dir, ".manifest"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	writePolicy(t, dir, policy)
}

func writePolicy(t *testing.T, dir, policy string) {
	t.Helper()
	// Write then rename, so the watcher never reads a half-written file.
	tmp := filepath.Join(dir, ".policy.rego.tmp")
	if err := os.WriteFile(tmp, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "policy.rego")); err != nil {
		t.Fatal(err)
	}
}

const allowAlice = `package pdp.authz

default allow := false

allow if input.subject.id == "alice"
`

const allowBob = `package pdp.authz

default allow := false

allow if input.subject.id == "bob"
`

// brokenPolicy has a syntax error on line 3.
const brokenPolicy = `package pdp.authz

allow if input.subject.id == == "bob"

default allow := false
`

func TestServeBrokenBundleAtStart(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, dir, "r1", brokenPolicy)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pdpBinary, "serve")
	cmd.Env = append(os.Environ(), "PDP_BUNDLE_PATH="+dir, "PDP_HTTP_ADDR="+freeAddr(t),
		"PDP_GRPC_ADDR="+freeAddr(t), "PDP_AUDIT_DIR="+filepath.Join(t.TempDir(), "audit"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("pdp serve with a broken bundle exited 0, want non-zero\n%s", out)
	}
	if !strings.Contains(string(out), "policy.rego:3") {
		t.Errorf("startup error does not name policy.rego:3:\n%s", out)
	}
}

func TestServeReloadsEditedPolicy(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, dir, "", allowAlice)
	s := startServer(t, "", "PDP_BUNDLE_PATH="+dir)

	alice := `{"subject":{"id":"alice"}}`
	bob := `{"subject":{"id":"bob"}}`
	if _, d := s.decide(alice); !d.Allow {
		t.Fatalf("alice before edit: %+v, want allow", d)
	}

	writePolicy(t, dir, allowBob)
	waitFor(t, "bob allowed after edit", func() bool {
		_, d := s.decide(bob)
		return d.Allow
	})
	_, before := s.decide(bob)

	writePolicy(t, dir, brokenPolicy)
	waitFor(t, "reload rejection logged", func() bool {
		return strings.Contains(s.stderr.String(), "policy.rego:3")
	})
	_, after := s.decide(bob)
	if !after.Allow {
		t.Errorf("bob after broken edit: %+v, want allow from the last good revision", after)
	}
	if after.BundleRevision != before.BundleRevision {
		t.Errorf("revision after broken edit = %q, want %q", after.BundleRevision, before.BundleRevision)
	}
	if _, d := s.decide(alice); d.Allow {
		t.Errorf("alice after edit: %+v, want deny", d)
	}
}

// waitFor polls cond until it holds or 15 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
