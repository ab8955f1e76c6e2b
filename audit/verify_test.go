package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tamperFixture writes a chain of 16 decisions over several files with a
// checkpoint every 4 records and returns its config and exported anchors,
// read with the checkpoint public key.
func tamperFixture(t *testing.T) (Config, *CheckpointFile) {
	t.Helper()
	cfg := testConfig(t)
	cfg.RotateSize = 1500
	cfg.CheckpointEvery = 4
	l, _ := openLog(t, cfg)
	record(t, l, 16)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	anchors, err := ReadCheckpoints(checkpointsPath(cfg), publicKey(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	if anchors.Fault != nil {
		t.Fatalf("checkpoints file fault: %v", anchors.Fault)
	}
	if n := len(chainFiles(t, cfg.Dir)); n < 4 {
		t.Fatalf("fixture has %d files, want at least 4", n)
	}
	return cfg, &anchors
}

// checkpointsPath returns the test instance's exported checkpoints file.
func checkpointsPath(cfg Config) string {
	return filepath.Join(cfg.Dir, "checkpoints-"+testInstance+".jsonl")
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	lines[len(lines)-1] = append(lines[len(lines)-1], '\n')
	return lines
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	out := bytes.Join(lines, nil)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	if err := os.WriteFile(path, out, 0o640); err != nil {
		t.Fatal(err)
	}
}

func editLine(t *testing.T, path string, line int, edit func([]byte) []byte) {
	t.Helper()
	lines := readLines(t, path)
	lines[line-1] = edit(lines[line-1])
	writeLines(t, path, lines)
}

// reseal recomputes the hashes and links of every record from the start of
// the chain, as a forger without the checkpoint key would, signing
// checkpoints with key. keepKeyID keeps the original key_id field, and
// keepHeads keeps the checkpoints' record_count and head_hash.
func reseal(t *testing.T, files []string, key ed25519.PrivateKey, keepKeyID, keepHeads bool) {
	t.Helper()
	prev := GenesisHash
	var seq uint64
	for _, path := range files {
		lines := readLines(t, path)
		for i, line := range lines {
			v, err := decodeJSON(bytes.TrimSpace(line))
			if err != nil {
				t.Fatal(err)
			}
			f := v.(map[string]any)
			delete(f, fieldHash)
			seq++
			if f[fieldType] == TypeCheckpoint {
				f[fieldSeq], f[fieldPrevHash] = seq, prev
				if !keepHeads {
					f[fieldRecordCount], f[fieldHeadHash] = seq-1, prev
				}
				if !keepKeyID {
					f[fieldKeyID] = KeyID(key.Public().(ed25519.PublicKey))
				}
				delete(f, fieldSignature)
				if err := signCheckpoint(f, key); err != nil {
					t.Fatal(err)
				}
			}
			sealed, h, err := sealRecord(f, seq, prev)
			if err != nil {
				t.Fatal(err)
			}
			lines[i], prev = sealed, h
		}
		writeLines(t, path, lines)
	}
}

func setField(key string, value any) func([]byte) []byte {
	return func(line []byte) []byte {
		var f map[string]any
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&f); err != nil {
			panic(err)
		}
		f[key] = value
		out, err := json.Marshal(f)
		if err != nil {
			panic(err)
		}
		return append(out, '\n')
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	_, attackerKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		// tamper changes the files; it returns the index of the file and
		// the line the fault must name.
		tamper      func(t *testing.T, files []string) (file, line int)
		noKey       bool
		withAnchors bool
		problem     string
	}{
		{
			name: "altered byte",
			tamper: func(t *testing.T, files []string) (int, int) {
				editLine(t, files[0], 2, func(l []byte) []byte {
					return bytes.Replace(l, []byte("billing-1"), []byte("billing-7"), 1)
				})
				return 0, 2
			},
			problem: "hash mismatch",
		},
		{
			name: "altered record with recomputed hash",
			tamper: func(t *testing.T, files []string) (int, int) {
				editLine(t, files[0], 1, func(l []byte) []byte {
					rec, err := parseRecord(bytes.TrimSpace(l))
					if err != nil {
						t.Fatal(err)
					}
					rec.fields["allow"] = true
					delete(rec.fields, fieldHash)
					out, _, err := sealRecord(rec.fields, rec.seq, rec.prevHash)
					if err != nil {
						t.Fatal(err)
					}
					return out
				})
				return 0, 2
			},
			problem: "prev_hash",
		},
		{
			name: "deleted record",
			tamper: func(t *testing.T, files []string) (int, int) {
				lines := readLines(t, files[1])
				writeLines(t, files[1], append(lines[:1:1], lines[2:]...))
				return 1, 2
			},
			problem: "records are missing",
		},
		{
			name: "swapped records",
			tamper: func(t *testing.T, files []string) (int, int) {
				lines := readLines(t, files[1])
				lines[1], lines[2] = lines[2], lines[1]
				writeLines(t, files[1], lines)
				return 1, 2
			},
			problem: "reordered",
		},
		{
			name: "reformatted record is still valid",
			tamper: func(t *testing.T, files []string) (int, int) {
				editLine(t, files[0], 1, setField("tenant", "t-42"))
				return -1, 0
			},
		},
		{
			name: "truncated inside a record",
			tamper: func(t *testing.T, files []string) (int, int) {
				last := files[len(files)-1]
				data, _ := os.ReadFile(last)
				os.WriteFile(last, data[:len(data)-40], 0o640)
				return len(files) - 1, len(readLines(t, last))
			},
			problem: "torn or truncated",
		},
		{
			name: "records cut from the end",
			tamper: func(t *testing.T, files []string) (int, int) {
				last := files[len(files)-1]
				lines := readLines(t, last)
				writeLines(t, last, lines[:len(lines)-2])
				return len(files) - 1, 0
			},
			withAnchors: true,
			problem:     "cut from the end",
		},
		{
			name: "removed rotated file",
			tamper: func(t *testing.T, files []string) (int, int) {
				os.Remove(files[1])
				return 2, 1
			},
			problem: "first record of the file has seq",
		},
		{
			name: "forged checkpoint with another key",
			tamper: func(t *testing.T, files []string) (int, int) {
				editLine(t, files[0], 1, setField("allow", true))
				reseal(t, files, attackerKey, false, false)
				return firstCheckpoint(t, files)
			},
			problem: "does not match the verification key",
		},
		{
			name: "forged checkpoint signature",
			tamper: func(t *testing.T, files []string) (int, int) {
				editLine(t, files[0], 1, setField("allow", true))
				reseal(t, files, attackerKey, true, false)
				return firstCheckpoint(t, files)
			},
			problem: "signature is invalid",
		},
		{
			name: "checkpoint states another head",
			tamper: func(t *testing.T, files []string) (int, int) {
				f, line := firstCheckpoint(t, files)
				editLine(t, files[f], line, setField(fieldRecordCount, 99))
				// Re-hash without re-signing: the verifier runs without a
				// key, so only the head statement can catch this.
				reseal(t, files, attackerKey, true, true)
				return f, line
			},
			noKey:   true,
			problem: "checkpoint states head seq",
		},
		{
			name: "resealed chain against anchors",
			tamper: func(t *testing.T, files []string) (int, int) {
				editLine(t, files[0], 1, setField("allow", true))
				reseal(t, files, attackerKey, true, false)
				return firstCheckpoint(t, files)
			},
			noKey:       true,
			withAnchors: true,
			problem:     "of the anchored checkpoint at this seq (checkpoints-" + testInstance + ".jsonl:1)",
		},
		{
			name: "record from another instance",
			tamper: func(t *testing.T, files []string) (int, int) {
				editLine(t, files[0], 2, setField(fieldInstance, "pdp-other"))
				reseal(t, files, attackerKey, true, false)
				return 0, 2
			},
			noKey:   true,
			problem: "instance",
		},
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, anchors := tamperFixture(t)
			files := chainFiles(t, cfg.Dir)
			wantFile, wantLine := c.tamper(t, files)

			opts := VerifyOptions{PublicKey: publicKey(t, cfg)}
			if c.noKey {
				opts.PublicKey = nil
			}
			if c.withAnchors {
				opts.Anchors = anchors
			}
			res, err := Verify(chainFiles(t, cfg.Dir), opts)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if wantFile < 0 {
				if res.Fault != nil {
					t.Fatalf("fault = %v, want none", res.Fault)
				}
				return
			}
			if res.Fault == nil {
				t.Fatalf("no fault found, want %q", c.problem)
			}
			if !strings.Contains(res.Fault.Problem, c.problem) {
				t.Errorf("problem = %q, want it to mention %q", res.Fault.Problem, c.problem)
			}
			if res.Fault.File != files[wantFile] {
				t.Errorf("fault file = %s, want %s", res.Fault.File, files[wantFile])
			}
			if res.Fault.Line != wantLine {
				t.Errorf("fault line = %d, want %d", res.Fault.Line, wantLine)
			}
			if wantLine > 0 && res.Fault.Seq == 0 && !strings.Contains(c.problem, "torn") {
				t.Errorf("fault names no seq: %v", res.Fault)
			}
		})
	}
}

// firstCheckpoint returns the file index and line of the first checkpoint.
func firstCheckpoint(t *testing.T, files []string) (int, int) {
	t.Helper()
	for fi, path := range files {
		for li, line := range readLines(t, path) {
			if bytes.Contains(line, []byte(`"type":"checkpoint"`)) {
				return fi, li + 1
			}
		}
	}
	t.Fatal("no checkpoint in the chain")
	return 0, 0
}

func TestVerifyFaultNamesDecision(t *testing.T) {
	cfg, _ := tamperFixture(t)
	files := chainFiles(t, cfg.Dir)
	editLine(t, files[0], 1, func(l []byte) []byte {
		return bytes.Replace(l, []byte(`"allow":false`), []byte(`"allow":true `), 1)
	})
	res, err := Verify(files, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Fault == nil || res.Fault.DecisionID == "" || res.Fault.Seq != 1 {
		t.Fatalf("fault = %+v, want seq 1 with its decision id", res.Fault)
	}
	msg := res.Fault.Error()
	if !strings.Contains(msg, res.Fault.DecisionID) || !strings.Contains(msg, filepath.Base(files[0])+":1") {
		t.Errorf("fault text %q should name the file, line and decision", msg)
	}
}

func TestVerifyPartialChain(t *testing.T) {
	cfg, _ := tamperFixture(t)
	files := chainFiles(t, cfg.Dir)
	res, _ := Verify(files[1:], VerifyOptions{})
	if res.Fault == nil || !strings.Contains(res.Fault.Problem, "chain starts at seq") {
		t.Fatalf("fault = %v, want a chain start fault", res.Fault)
	}
	res, _ = Verify(files[1:], VerifyOptions{Partial: true})
	if res.Fault != nil {
		t.Fatalf("partial verify: %v", res.Fault)
	}
}
