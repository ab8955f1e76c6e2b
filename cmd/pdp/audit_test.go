package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authgate/pdp/audit"
	"github.com/authgate/pdp/pdp"
)

// writeChain records n decisions in a fresh directory and returns the
// directory and the public key file.
func writeChain(t *testing.T, n int) (dir, pubFile string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "audit")
	l, err := audit.Open(audit.Config{Dir: dir, RotateSize: 1500}, audit.Options{Instance: "pdp-a"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		ev := &pdp.AuditEvent{DecisionID: pdp.NewDecisionID(), Allow: true,
			Reason: pdp.ReasonAllowed, HTTPStatus: 200, Subject: "billing"}
		if err := l.Record(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, audit.DefaultKeyFile(dir) + audit.PublicKeySuffix
}

func runVerify(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = auditVerify(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestAuditVerifyIntactChain(t *testing.T) {
	dir, pub := writeChain(t, 8)
	anchors := filepath.Join(dir, "checkpoints-pdp-a.jsonl")

	code, out, errOut := runVerify("--key", pub, "--checkpoints", anchors, dir)
	if code != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, want := range []string{"ok instance pdp-a", "8 decisions", "head hash", "signatures verified"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}

func TestAuditVerifyFilesInOrder(t *testing.T) {
	dir, pub := writeChain(t, 8)
	files, err := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	if err != nil || len(files) < 2 {
		t.Fatalf("files = %v, %v; want several", files, err)
	}
	if code, out, _ := runVerify(append([]string{"--key", pub}, files...)...); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	// The same files without the first one: the chain no longer starts
	// at seq 1, unless --partial allows it.
	if code, out, _ := runVerify(append([]string{"--key", pub}, files[1:]...)...); code != 1 {
		t.Errorf("without the first file: exit %d, want 1: %s", code, out)
	}
	if code, out, _ := runVerify(append([]string{"--key", pub, "--partial"}, files[1:]...)...); code != 0 {
		t.Errorf("--partial: exit %d, want 0: %s", code, out)
	}
}

func TestAuditVerifyNamesFault(t *testing.T) {
	dir, pub := writeChain(t, 8)
	files, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"allow":true`), []byte(`"allow":false`), 1)
	if err := os.WriteFile(files[0], data, 0o640); err != nil {
		t.Fatal(err)
	}

	code, out, _ := runVerify("--key", pub, dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q", code, out)
	}
	if !strings.Contains(out, "FAIL") || !strings.Contains(out, filepath.Base(files[0])+":1 seq 1") ||
		!strings.Contains(out, "hash mismatch") {
		t.Errorf("output %q should name the file, line, seq and problem", out)
	}
}

func TestAuditVerifyWrongKey(t *testing.T) {
	dir, _ := writeChain(t, 3)
	_, otherPub := writeChain(t, 1)
	code, out, _ := runVerify("--key", otherPub, dir)
	if code != 1 || !strings.Contains(out, "verification key") {
		t.Errorf("exit %d, output %q; want a key mismatch fault", code, out)
	}
}

func TestAuditVerifyUsageErrors(t *testing.T) {
	cases := map[string][]string{
		"no paths":        nil,
		"missing file":    {"/nonexistent/audit.jsonl"},
		"missing key":     {"--key", "/nonexistent/key.pub", "."},
		"unknown flag":    {"--bogus", "."},
		"empty directory": {t.TempDir()},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			if code, _, _ := runVerify(args...); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
		})
	}
}
