package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShippedPolicyTestsPass runs the Rego unit tests of the shipped bundle,
// so `make test` fails when a policy change breaks them.
func TestShippedPolicyTestsPass(t *testing.T) {
	b, name, err := readTestBundle("")
	if err != nil {
		t.Fatalf("read shipped bundle: %v", err)
	}
	var out bytes.Buffer
	failed, err := runBundleTests(context.Background(), &out, b, name,
		testSettings{timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("run tests: %v\n%s", err, out.String())
	}
	if failed {
		t.Fatalf("shipped policy tests failed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "PASS") {
		t.Fatalf("no PASS line in output:\n%s", out.String())
	}
}

func TestPolicyTestReportsFailure(t *testing.T) {
	dir := t.TempDir()
	policy := "package p\n\nallow if input.x == 1\n\ntest_allow if allow with input as {\"x\": 2}\n"
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := runPolicyTest([]string{dir}); code != 1 {
		t.Fatalf("exit code = %d for a failing test, want 1", code)
	}
}
