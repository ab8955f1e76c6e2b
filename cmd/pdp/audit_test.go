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

func TestAuditVerifyCheckpointsFile(t *testing.T) {
	dir, pub := writeChain(t, 8)
	anchorsPath := filepath.Join(dir, "checkpoints-pdp-a.jsonl")
	good, err := os.ReadFile(anchorsPath)
	if err != nil {
		t.Fatal(err)
	}
	// Other chains of the same instance are written with other keys, so
	// their anchors have valid hashes but are not signed by this key.
	otherDir, _ := writeChain(t, 8)
	otherAnchors, err := os.ReadFile(filepath.Join(otherDir, "checkpoints-pdp-a.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	longerDir, _ := writeChain(t, 12)
	longerAnchors, err := os.ReadFile(filepath.Join(longerDir, "checkpoints-pdp-a.jsonl"))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		content []byte
		noKey   bool
		code    int
		// want are phrases the output must contain.
		want []string
	}{
		{
			name:    "valid file",
			content: good,
			want:    []string{"ok instance pdp-a", "1 anchored checkpoints from " + anchorsPath},
		},
		{
			name:    "valid file without key",
			content: good,
			noKey:   true,
			want:    []string{"WARNING: anchors in " + anchorsPath + " are unauthenticated", "ok instance pdp-a"},
		},
		{
			name:    "anchor signed by another key",
			content: otherAnchors,
			code:    1,
			want:    []string{"FAIL " + anchorsPath + ":1 seq 9", "does not match the verification key"},
		},
		{
			name:    "forged anchor beyond the head",
			content: longerAnchors,
			code:    1,
			want:    []string{"FAIL " + anchorsPath + ":1 seq 13", "does not match the verification key"},
		},
		{
			name:    "altered anchor",
			content: bytes.Replace(good, []byte(`"time":"20`), []byte(`"time":"19`), 1),
			code:    1,
			want:    []string{"FAIL " + anchorsPath + ":1", "hash mismatch"},
		},
		{
			name:    "duplicate anchor",
			content: append(append([]byte(nil), good...), good...),
			code:    1,
			want:    []string{"FAIL " + anchorsPath + ":2 seq 9", "reordered or duplicated"},
		},
		{
			name:    "empty file",
			content: nil,
			code:    1,
			want:    []string{"FAIL " + anchorsPath + ": no anchors"},
		},
	}
	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "checkpoints-pdp-a.jsonl")
		if code, out, _ := runVerify("--key", pub, "--checkpoints", missing, dir); code != 2 {
			t.Errorf("exit %d, want 2 for an unreadable file; stdout %q", code, out)
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(anchorsPath, c.content, 0o640); err != nil {
				t.Fatal(err)
			}
			args := []string{"--key", pub, "--checkpoints", anchorsPath, dir}
			if c.noKey {
				args = args[2:]
			}
			code, out, errOut := runVerify(args...)
			if code != c.code {
				t.Errorf("exit %d, want %d; stdout %q, stderr %q", code, c.code, out, errOut)
			}
			for _, want := range c.want {
				if !strings.Contains(out, want) {
					t.Errorf("output %q lacks %q", out, want)
				}
			}
			if c.code != 0 && strings.Contains(out, "audit-pdp-a") {
				t.Errorf("output %q blames an audit file for a bad checkpoints file", out)
			}
		})
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
