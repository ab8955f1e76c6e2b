package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// CheckpointFile is an exported checkpoints file
// (checkpoints-<instance>.jsonl) as read and checked by ReadCheckpoints.
type CheckpointFile struct {
	Path string
	// Checkpoints are the file's anchors in file order, and Lines holds the
	// 1-based line of each. Both stop before the first bad line.
	Checkpoints []Checkpoint
	Lines       []int
	// Authenticated is true when every anchor's signature was verified
	// against a public key. Without one, anyone who can write the file can
	// add anchors whose hashes are correct.
	Authenticated bool
	// Fault is the first bad line, or the whole file when it has no
	// anchors. It is nil when the file is intact.
	Fault *Fault
}

// ReadCheckpoints reads an exported checkpoints file and checks each line
// on its own: its record hash, its statement of the head, its signature
// against pub, and that its seq is greater than the previous anchor's seq
// of the same instance. A nil pub skips the signatures. A file without
// anchors is a fault, because an emptied file would otherwise pass. It
// returns an error only when the file cannot be read; a bad line is
// reported in CheckpointFile.Fault.
//
// NOTE: anchors do not link to each other, so a whole line removed from
// the file, in the middle or at the end, is not detected.
func ReadCheckpoints(path string, pub ed25519.PublicKey) (CheckpointFile, error) {
	out := CheckpointFile{Path: path, Authenticated: pub != nil}
	f, err := os.Open(path)
	if err != nil {
		return out, fmt.Errorf("read checkpoints: %w", err)
	}
	defer f.Close()

	// previous holds, per instance, the anchor read last and its line.
	previous := make(map[string]anchor)
	r := bufio.NewReaderSize(f, 64<<10)
	for lineNo := 1; ; lineNo++ {
		line, err := r.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return out, fmt.Errorf("read checkpoints %s: %w", path, err)
		}
		eof := err != nil
		if eof && len(line) > 0 {
			out.Fault = &Fault{File: path, Line: lineNo,
				Problem: "file ends inside an anchor: torn or truncated write"}
			return out, nil
		}
		if eof {
			break
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}

		cp, seq, err := parseCheckpoint(line, pub)
		if err != nil {
			out.Fault = &Fault{File: path, Line: lineNo, Seq: seq,
				Problem: "invalid anchor: " + err.Error()}
			return out, nil
		}
		if prev, ok := previous[cp.Instance]; ok && cp.Seq <= prev.cp.Seq {
			out.Fault = &Fault{File: path, Line: lineNo, Seq: cp.Seq, Problem: fmt.Sprintf(
				"anchor seq %d does not increase after seq %d on line %d: "+
					"anchors are reordered or duplicated", cp.Seq, prev.cp.Seq, prev.line)}
			return out, nil
		}
		previous[cp.Instance] = anchor{cp: cp, line: lineNo}
		out.Checkpoints = append(out.Checkpoints, cp)
		out.Lines = append(out.Lines, lineNo)
	}

	if len(out.Checkpoints) == 0 {
		out.Fault = &Fault{File: path,
			Problem: "no anchors: the file contains no checkpoint records (emptied, or not a checkpoints file)"}
	}
	return out, nil
}

// parseCheckpoint reads one checkpoint record line and checks its hash, its
// statement of the head and, when pub is not nil, its signature. It also
// returns the line's seq when it could be read, for the fault.
func parseCheckpoint(line []byte, pub ed25519.PublicKey) (Checkpoint, uint64, error) {
	rec, err := parseRecord(line)
	if rec == nil {
		return Checkpoint{}, 0, err
	}
	if err != nil {
		return Checkpoint{}, rec.seq, err
	}

	if rec.typ != TypeCheckpoint {
		return Checkpoint{}, rec.seq, fmt.Errorf("record type is %q, want %q", rec.typ, TypeCheckpoint)
	}
	count, err := uintField(rec.fields, fieldRecordCount)
	if err != nil {
		return Checkpoint{}, rec.seq, err
	}
	head, _ := rec.fields[fieldHeadHash].(string)
	if count != rec.seq-1 || head != rec.prevHash {
		return Checkpoint{}, rec.seq, fmt.Errorf("checkpoint states head seq %d hash %s, "+
			"but it follows seq %d hash %s", count, head, rec.seq-1, rec.prevHash)
	}

	stamp, _ := rec.fields[fieldTime].(string)
	t, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		return Checkpoint{}, rec.seq, fmt.Errorf("checkpoint time %q: %w", stamp, err)
	}

	if pub != nil {
		if err := verifyCheckpointSignature(rec.fields, pub); err != nil {
			return Checkpoint{}, rec.seq, err
		}
	}
	return Checkpoint{
		Instance: rec.instance, Seq: rec.seq, RecordCount: count, HeadHash: head,
		Hash: rec.hash, Time: t, Line: append([]byte(nil), line...),
	}, rec.seq, nil
}
