package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// VerifyOptions sets what Verify checks beyond the chain itself.
type VerifyOptions struct {
	// PublicKey verifies checkpoint signatures; nil skips them, and
	// Result.SignaturesUnchecked counts them.
	PublicKey ed25519.PublicKey
	// Anchors is an exported checkpoints file as returned by
	// ReadCheckpoints, read with the same PublicKey. When it has a Fault,
	// Verify reports that fault and does not read the chain, because a bad
	// anchor proves nothing about the chain. Otherwise each anchor of the
	// chain's instance must appear in the chain with the same hash, and the
	// chain must reach the last one, which detects records cut from the end.
	Anchors *CheckpointFile
	// Partial accepts a chain whose first record is not seq 1, as left by
	// retention that deleted the oldest files.
	Partial bool
}

// Result summarises a verified chain.
type Result struct {
	Files       int
	Records     uint64
	Decisions   uint64
	Checkpoints uint64
	// SignaturesChecked and SignaturesUnchecked count checkpoint signatures
	// verified against VerifyOptions.PublicKey and skipped for lack of one.
	SignaturesChecked   uint64
	SignaturesUnchecked uint64
	// AnchorsMatched counts the anchors from VerifyOptions.Anchors found in
	// the chain with the same hash.
	AnchorsMatched uint64
	Instance       string
	FirstSeq       uint64
	HeadSeq        uint64
	HeadHash       string
	// EndsWithCheckpoint is true when the last record is a checkpoint, as
	// after a clean Close.
	EndsWithCheckpoint bool
	// Fault is the first problem found; nil when the chain is intact.
	Fault *Fault
}

// Fault names the first bad record of a chain and what is wrong with it.
type Fault struct {
	File string
	// Line is 1-based; 0 when the problem concerns a whole file.
	Line       int
	Seq        uint64
	DecisionID string
	Problem    string
}

func (f *Fault) Error() string {
	where := f.File
	if f.Line > 0 {
		where += ":" + strconv.Itoa(f.Line)
	}
	if f.Seq > 0 {
		where += fmt.Sprintf(" seq %d", f.Seq)
	}
	if f.DecisionID != "" {
		where += " decision " + f.DecisionID
	}
	return where + ": " + f.Problem
}

// parsedRecord is one record line with its chain fields read out.
type parsedRecord struct {
	fields     map[string]any
	typ        string
	seq        uint64
	prevHash   string
	hash       string
	instance   string
	decisionID string
}

// parseRecord decodes one line, checks the chain fields are present and
// well formed and that hash matches the other fields.
func parseRecord(line []byte) (*parsedRecord, error) {
	v, err := decodeJSON(line)
	if err != nil {
		return nil, err
	}
	fields, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("record is not a JSON object")
	}
	rec := &parsedRecord{fields: fields}
	rec.decisionID, _ = fields["decision_id"].(string)

	var errs []error
	str := func(key string) string {
		s, ok := fields[key].(string)
		if !ok || s == "" {
			errs = append(errs, fmt.Errorf("field %q is missing or not a string", key))
		}
		return s
	}
	rec.typ = str(fieldType)
	rec.prevHash = str(fieldPrevHash)
	rec.hash = str(fieldHash)
	rec.instance = str(fieldInstance)
	str(fieldTime)
	rec.seq, err = uintField(fields, fieldSeq)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return rec, err
	}
	if rec.typ != TypeDecision && rec.typ != TypeCheckpoint {
		return rec, fmt.Errorf("unknown record type %q", rec.typ)
	}

	want, err := recordHash(fields)
	if err != nil {
		return rec, err
	}
	if want != rec.hash {
		return rec, fmt.Errorf("hash mismatch: the record was altered (stored %s, computed %s)",
			rec.hash, want)
	}
	return rec, nil
}

// uintField reads a positive integer field no larger than 2^53.
func uintField(fields map[string]any, key string) (uint64, error) {
	n, ok := fields[key].(json.Number)
	if !ok {
		return 0, fmt.Errorf("field %q is missing or not a number", key)
	}
	v, err := strconv.ParseUint(string(n), 10, 64)
	if err != nil || v == 0 || v > maxSafeInteger {
		return 0, fmt.Errorf("field %q is %s, want an integer from 1 to 2^53", key, n)
	}
	return v, nil
}

// Verify checks one instance's chain, given as its files in chain order.
// It checks every record's hash and its link to the record before, gapless
// sequence numbers across files, one instance throughout, checkpoint
// contents and signatures, and the anchors in opts. It returns an error
// when a file cannot be read or when opts.Anchors was read without
// opts.PublicKey. A broken chain, or a fault of the anchors file, is
// reported in Result.Fault.
func Verify(files []string, opts VerifyOptions) (Result, error) {
	v := &verifier{opts: opts, anchors: make(map[anchorKey]anchor)}
	if a := opts.Anchors; a != nil {
		if a.Fault != nil {
			v.res.Fault = a.Fault
			return v.res, nil
		}
		if opts.PublicKey != nil && !a.Authenticated && len(a.Checkpoints) > 0 {
			return v.res, fmt.Errorf("anchors from %s were read without the public key: "+
				"read them with ReadCheckpoints and VerifyOptions.PublicKey", a.Path)
		}
		for i, cp := range a.Checkpoints {
			v.anchors[anchorKey{cp.Instance, cp.Seq}] = anchor{cp: cp, line: a.Lines[i]}
		}
	}
	for _, path := range files {
		if err := v.file(path); err != nil {
			return v.res, err
		}
		if v.res.Fault != nil {
			return v.res, nil
		}
	}
	v.checkAnchors()
	return v.res, nil
}

type verifier struct {
	opts VerifyOptions
	res  Result
	// last is the previous record; nil before the first.
	last *parsedRecord
	// lastFile is the file the previous record came from.
	lastFile string
	anchors  map[anchorKey]anchor
}

// anchorKey identifies a checkpoint across instances.
type anchorKey struct {
	instance string
	seq      uint64
}

// anchor is a checkpoint from the anchors file and its 1-based line there.
type anchor struct {
	cp   Checkpoint
	line int
}

// formatAnchorLocation formats the anchor's file and line for messages.
func (v *verifier) formatAnchorLocation(a anchor) string {
	return fmt.Sprintf("%s:%d", filepath.Base(v.opts.Anchors.Path), a.line)
}

func (v *verifier) fail(file string, line int, rec *parsedRecord, problem string) {
	f := &Fault{File: file, Line: line, Problem: problem}
	if rec != nil {
		f.Seq, f.DecisionID = rec.seq, rec.decisionID
	}
	v.res.Fault = f
}

func (v *verifier) file(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open audit file: %w", err)
	}
	defer f.Close()
	v.res.Files++

	r := bufio.NewReaderSize(f, 64<<10)
	first := true
	for lineNo := 1; ; lineNo++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				v.fail(path, lineNo, nil, "file ends inside a record: torn or truncated write")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		rec, perr := parseRecord(bytes.TrimSuffix(line, []byte("\n")))
		if perr != nil {
			v.fail(path, lineNo, rec, perr.Error())
			return nil
		}
		if first {
			first = false
			if !v.fileStart(path, lineNo, rec) {
				return nil
			}
		}
		if !v.record(path, lineNo, rec) {
			return nil
		}
	}
}

// fileStart checks that a file's first record matches the sequence number
// in its name.
func (v *verifier) fileStart(path string, lineNo int, rec *parsedRecord) bool {
	_, nameSeq, ok := parseSegmentName(filepath.Base(path))
	if ok && nameSeq != rec.seq {
		v.fail(path, lineNo, rec, fmt.Sprintf(
			"file name says the first record is seq %d, but it is seq %d", nameSeq, rec.seq))
		return false
	}
	return true
}

// record checks one parsed record against the one before it.
func (v *verifier) record(path string, lineNo int, rec *parsedRecord) bool {
	if v.last == nil {
		if !v.chainStart(path, lineNo, rec) {
			return false
		}
	} else if !v.link(path, lineNo, rec) {
		return false
	}
	if rec.typ == TypeCheckpoint && !v.checkpoint(path, lineNo, rec) {
		return false
	}
	if a, ok := v.anchors[anchorKey{rec.instance, rec.seq}]; ok {
		if a.cp.Hash != rec.hash {
			v.fail(path, lineNo, rec, fmt.Sprintf("record hash %s differs from the hash %s "+
				"of the anchored checkpoint at this seq (%s)", rec.hash, a.cp.Hash, v.formatAnchorLocation(a)))
			return false
		}
		v.res.AnchorsMatched++
	}

	v.res.Records++
	if rec.typ == TypeCheckpoint {
		v.res.Checkpoints++
	} else {
		v.res.Decisions++
	}
	v.res.HeadSeq, v.res.HeadHash = rec.seq, rec.hash
	v.res.EndsWithCheckpoint = rec.typ == TypeCheckpoint
	v.last, v.lastFile = rec, path
	return true
}

func (v *verifier) chainStart(path string, lineNo int, rec *parsedRecord) bool {
	v.res.Instance, v.res.FirstSeq = rec.instance, rec.seq
	if rec.seq == 1 && rec.prevHash != GenesisHash {
		v.fail(path, lineNo, rec, "first record (seq 1) does not have the genesis prev_hash")
		return false
	}
	if rec.seq != 1 && !v.opts.Partial {
		v.fail(path, lineNo, rec, fmt.Sprintf("chain starts at seq %d, not 1: earlier records "+
			"or files are missing (use --partial when retention removed them)", rec.seq))
		return false
	}
	return true
}

func (v *verifier) link(path string, lineNo int, rec *parsedRecord) bool {
	prev := v.last
	where := "record"
	if path != v.lastFile {
		where = "first record of the file"
	}
	switch {
	case rec.instance != v.res.Instance:
		v.fail(path, lineNo, rec, fmt.Sprintf("instance %q differs from the chain's %q",
			rec.instance, v.res.Instance))
	case rec.seq != prev.seq+1:
		v.fail(path, lineNo, rec, fmt.Sprintf("%s has seq %d, want %d after seq %d in %s: "+
			"records are missing, duplicated or reordered", where, rec.seq, prev.seq+1, prev.seq,
			filepath.Base(v.lastFile)))
	case rec.prevHash != prev.hash:
		v.fail(path, lineNo, rec, fmt.Sprintf("%s has prev_hash %s, but the record before it "+
			"(seq %d in %s) has hash %s", where, rec.prevHash, prev.seq,
			filepath.Base(v.lastFile), prev.hash))
	default:
		return true
	}
	return false
}

// checkpoint checks a checkpoint's statement of the head and its signature.
func (v *verifier) checkpoint(path string, lineNo int, rec *parsedRecord) bool {
	count, err := uintField(rec.fields, fieldRecordCount)
	if err != nil {
		v.fail(path, lineNo, rec, "checkpoint "+err.Error())
		return false
	}
	head, _ := rec.fields[fieldHeadHash].(string)
	if count != rec.seq-1 || head != rec.prevHash {
		v.fail(path, lineNo, rec, fmt.Sprintf("checkpoint states head seq %d hash %s, "+
			"but it follows seq %d hash %s", count, head, rec.seq-1, rec.prevHash))
		return false
	}
	if v.opts.PublicKey == nil {
		v.res.SignaturesUnchecked++
		return true
	}
	if err := verifyCheckpointSignature(rec.fields, v.opts.PublicKey); err != nil {
		v.fail(path, lineNo, rec, err.Error())
		return false
	}
	v.res.SignaturesChecked++
	return true
}

// checkAnchors checks that the chain reaches the last anchored checkpoint,
// which detects records cut from the end. The hash of each anchor inside
// the chain is checked as its record is read.
func (v *verifier) checkAnchors() {
	if v.res.Fault != nil {
		return
	}
	var last anchor
	for key, a := range v.anchors {
		if key.instance == v.res.Instance && a.cp.Seq > last.cp.Seq {
			last = a
		}
	}
	if last.cp.Seq > v.res.HeadSeq {
		v.res.Fault = &Fault{File: v.lastFile, Seq: v.res.HeadSeq, Problem: fmt.Sprintf(
			"chain ends at seq %d, but the anchored checkpoint at %s has seq %d: "+
				"records were cut from the end", v.res.HeadSeq, v.formatAnchorLocation(last), last.cp.Seq)}
	}
}
