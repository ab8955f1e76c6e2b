package audit

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseRecord feeds arbitrary lines to the audit reader: it must
// return a record or an error, never panic or hang.
func FuzzParseRecord(f *testing.F) {
	for _, seed := range []string{
		`{"seq":1,"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","hash":"00","type":"decision"}`,
		`{"a":1,"a":2}`,
		`{"n":1e400}`,
		`[1,2,3]`,
		"{\"s\":\"\xff\"}",
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, err := parseRecord(line)
		if err == nil && rec == nil {
			t.Fatal("parseRecord returned neither a record nor an error")
		}
	})
}

// FuzzVerifyFile runs the verifier over arbitrary file contents: a fault
// or an error, never a panic.
func FuzzVerifyFile(f *testing.F) {
	f.Add([]byte("{\"seq\":1}\n{\"seq\":2}\n"))
	f.Add([]byte("not json\n"))
	f.Add([]byte("{\"seq\":1"))
	dir := f.TempDir()
	path := filepath.Join(dir, "audit-fuzz-0000000000000001-20260101T000000Z.jsonl")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = Verify([]string{path}, VerifyOptions{})
	})
}

// FuzzReadCheckpoints runs the checkpoints file reader over arbitrary
// contents: a fault, checkpoints or an error, never a panic.
func FuzzReadCheckpoints(f *testing.F) {
	f.Add([]byte("{\"type\":\"checkpoint\",\"seq\":2}\n"))
	f.Add([]byte("\n\n"))
	f.Add([]byte("{\"seq\":1"))
	path := filepath.Join(f.TempDir(), "checkpoints-fuzz.jsonl")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := ReadCheckpoints(path, nil)
		if err == nil && file.Fault == nil && len(file.Checkpoints) == 0 {
			t.Fatal("ReadCheckpoints returned no checkpoints, no fault and no error")
		}
	})
}
