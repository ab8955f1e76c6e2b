package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
)

// resealAnchor applies edit to a checkpoint line and recomputes its hash,
// as a forger would. With a key it also signs the edited fields, and with a
// nil key the old signature stays.
func resealAnchor(t *testing.T, line []byte, key ed25519.PrivateKey, edit func(f map[string]any)) []byte {
	t.Helper()
	v, err := decodeJSON(bytes.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	f := v.(map[string]any)
	edit(f)
	delete(f, fieldHash)
	seq, err := uintField(f, fieldSeq)
	if err != nil {
		t.Fatal(err)
	}
	prevHash, _ := f[fieldPrevHash].(string)
	if key != nil {
		delete(f, fieldSignature)
		if err := signCheckpoint(f, key); err != nil {
			t.Fatal(err)
		}
	}
	sealed, _, err := sealRecord(f, seq, prevHash)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func TestReadCheckpointsFaults(t *testing.T) {
	pub, attackerKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	attackerKeyID := KeyID(pub)
	laterTime := func(f map[string]any) { f[fieldTime] = "2030-01-01T00:00:00Z" }

	cases := []struct {
		name string
		// edit returns the new lines of the checkpoints file; chain holds
		// the chain's audit files.
		edit  func(t *testing.T, lines [][]byte, chain []string) [][]byte
		noKey bool
		// line is the line the fault must name, or 0 for the whole file.
		// problem is a phrase of the fault, and "" means the file is valid.
		line    int
		problem string
	}{
		{
			name: "valid file",
			edit: func(t *testing.T, lines [][]byte, _ []string) [][]byte { return lines },
		},
		{
			name:  "valid file without key",
			edit:  func(t *testing.T, lines [][]byte, _ []string) [][]byte { return lines },
			noKey: true,
		},
		{
			name: "forged signature",
			edit: func(t *testing.T, lines [][]byte, _ []string) [][]byte {
				lines[1] = resealAnchor(t, lines[1], attackerKey, laterTime)
				return lines
			},
			line:    2,
			problem: "signature is invalid",
		},
		{
			name: "recomputed hash with old signature",
			edit: func(t *testing.T, lines [][]byte, _ []string) [][]byte {
				lines[1] = resealAnchor(t, lines[1], nil, laterTime)
				return lines
			},
			line:    2,
			problem: "signature is invalid",
		},
		{
			name: "forged anchor beyond the head",
			edit: func(t *testing.T, lines [][]byte, _ []string) [][]byte {
				last := lines[len(lines)-1]
				forged := resealAnchor(t, last, attackerKey, func(f map[string]any) {
					seq, _ := uintField(f, fieldSeq)
					f[fieldSeq] = json.Number(strconv.FormatUint(seq+5, 10))
					f[fieldRecordCount] = seq + 4
					f[fieldPrevHash], f[fieldHeadHash] = GenesisHash, GenesisHash
					f[fieldKeyID] = attackerKeyID
				})
				return append(lines, forged)
			},
			line:    5,
			problem: "does not match the verification key",
		},
		{
			name: "altered byte",
			edit: func(t *testing.T, lines [][]byte, _ []string) [][]byte {
				lines[2] = bytes.Replace(lines[2], []byte(`"time":"20`), []byte(`"time":"19`), 1)
				return lines
			},
			line:    3,
			problem: "hash mismatch",
		},
		{
			name: "altered byte without key",
			edit: func(t *testing.T, lines [][]byte, _ []string) [][]byte {
				lines[2] = bytes.Replace(lines[2], []byte(`"time":"20`), []byte(`"time":"19`), 1)
				return lines
			},
			noKey:   true,
			line:    3,
			problem: "hash mismatch",
		},
		{
			name: "reordered",
			edit: func(t *testing.T, lines [][]byte, _ []string) [][]byte {
				lines[1], lines[2] = lines[2], lines[1]
				return lines
			},
			line:    3,
			problem: "reordered or duplicated",
		},
		{
			name: "duplicate",
			edit: func(t *testing.T, lines [][]byte, _ []string) [][]byte {
				return append(lines[:2:2], append([][]byte{lines[1]}, lines[2:]...)...)
			},
			line:    3,
			problem: "reordered or duplicated",
		},
		{
			name:    "empty file",
			edit:    func(t *testing.T, _ [][]byte, _ []string) [][]byte { return nil },
			problem: "no anchors",
		},
		{
			name: "blank lines only",
			edit: func(t *testing.T, _ [][]byte, _ []string) [][]byte {
				return [][]byte{[]byte("\n"), []byte("  \n")}
			},
			problem: "no anchors",
		},
		{
			name: "torn last line",
			edit: func(t *testing.T, lines [][]byte, _ []string) [][]byte {
				last := lines[len(lines)-1]
				lines[len(lines)-1] = last[:len(last)-10]
				return lines
			},
			line:    4,
			problem: "torn or truncated",
		},
		{
			name: "decision record",
			edit: func(t *testing.T, lines [][]byte, chain []string) [][]byte {
				return append(lines, readLines(t, chain[0])[0])
			},
			line:    5,
			problem: "record type",
		},
		{
			// Anchors do not link to each other, so this is not detected.
			// docs/audit.md states the limit.
			name: "removed middle line is not detected",
			edit: func(t *testing.T, lines [][]byte, _ []string) [][]byte {
				return append(lines[:1:1], lines[2:]...)
			},
		},
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, _ := tamperFixture(t)
			path := checkpointsPath(cfg)
			lines := readLines(t, path)
			if len(lines) != 4 {
				t.Fatalf("fixture has %d anchors, want 4", len(lines))
			}
			lines = c.edit(t, lines, chainFiles(t, cfg.Dir))
			if err := os.WriteFile(path, bytes.Join(lines, nil), 0o640); err != nil {
				t.Fatal(err)
			}

			key := publicKey(t, cfg)
			if c.noKey {
				key = nil
			}
			anchors, err := ReadCheckpoints(path, key)
			if err != nil {
				t.Fatalf("ReadCheckpoints: %v", err)
			}
			if anchors.Authenticated != !c.noKey {
				t.Errorf("Authenticated = %v, want %v", anchors.Authenticated, !c.noKey)
			}
			res, err := Verify(chainFiles(t, cfg.Dir), VerifyOptions{PublicKey: key, Anchors: &anchors})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}

			if c.problem == "" {
				if anchors.Fault != nil {
					t.Fatalf("checkpoints fault = %v, want none", anchors.Fault)
				}
				if res.Fault != nil {
					t.Fatalf("Verify fault = %v, want none", res.Fault)
				}
				if res.AnchorsMatched != uint64(len(anchors.Checkpoints)) {
					t.Errorf("AnchorsMatched = %d, want %d", res.AnchorsMatched, len(anchors.Checkpoints))
				}
				return
			}
			if anchors.Fault == nil {
				t.Fatalf("no checkpoints fault, want %q", c.problem)
			}
			if !strings.Contains(anchors.Fault.Problem, c.problem) {
				t.Errorf("problem = %q, want it to mention %q", anchors.Fault.Problem, c.problem)
			}
			if anchors.Fault.File != path {
				t.Errorf("fault file = %s, want the checkpoints file %s", anchors.Fault.File, path)
			}
			if anchors.Fault.Line != c.line {
				t.Errorf("fault line = %d, want %d", anchors.Fault.Line, c.line)
			}
			// A bad anchors file is never blamed on the chain.
			if res.Fault != anchors.Fault {
				t.Errorf("Verify fault = %v, want the checkpoints fault %v", res.Fault, anchors.Fault)
			}
		})
	}
}

func TestVerifyAnchorsReadWithoutKey(t *testing.T) {
	cfg, _ := tamperFixture(t)
	anchors, err := ReadCheckpoints(checkpointsPath(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(chainFiles(t, cfg.Dir), VerifyOptions{PublicKey: publicKey(t, cfg), Anchors: &anchors})
	if err == nil || !strings.Contains(err.Error(), "without the public key") {
		t.Errorf("Verify error = %v, want one about anchors read without the public key", err)
	}
}

func TestReadCheckpointsMissingFile(t *testing.T) {
	if _, err := ReadCheckpoints(t.TempDir()+"/checkpoints-none.jsonl", nil); err == nil {
		t.Error("ReadCheckpoints of a missing file returned no error")
	}
}
