package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Audit files are named audit-<instance>-<first seq>-<UTC time>.jsonl, with
// the sequence number zero-padded to 16 digits, so names sort in chain
// order within one instance.
const (
	filePrefix     = "audit-"
	fileSuffix     = ".jsonl"
	fileTimeFormat = "20060102T150405Z"
	fileSeqDigits  = 16
	// fileTailLen is the length of "-<seq>-<time>.jsonl".
	fileTailLen = 1 + fileSeqDigits + 1 + len(fileTimeFormat) + len(fileSuffix)
)

// tailChunk is the first read size when looking for the last record of a
// file; it doubles until two line ends are found.
const tailChunk = 64 << 10

// fileInstance returns instance with every byte outside [A-Za-z0-9._-] as
// "_", so it is safe in a file name.
func fileInstance(instance string) string {
	var b strings.Builder
	for i := 0; i < len(instance); i++ {
		c := instance[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func segmentName(instance string, firstSeq uint64, t time.Time) string {
	return fmt.Sprintf("%s%s-%0*d-%s%s", filePrefix, fileInstance(instance),
		fileSeqDigits, firstSeq, t.UTC().Format(fileTimeFormat), fileSuffix)
}

// parseSegmentName returns the instance and first sequence number named by
// an audit file name.
func parseSegmentName(name string) (instance string, firstSeq uint64, ok bool) {
	if !strings.HasPrefix(name, filePrefix) || !strings.HasSuffix(name, fileSuffix) ||
		len(name) <= len(filePrefix)+fileTailLen {
		return "", 0, false
	}
	tail := name[len(name)-fileTailLen:]
	if tail[0] != '-' || tail[1+fileSeqDigits] != '-' {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(tail[1:1+fileSeqDigits], 10, 64)
	if err != nil {
		return "", 0, false
	}
	stamp := tail[2+fileSeqDigits : len(tail)-len(fileSuffix)]
	if _, err := time.Parse(fileTimeFormat, stamp); err != nil {
		return "", 0, false
	}
	return name[len(filePrefix) : len(name)-fileTailLen], seq, true
}

// ListChains returns the audit files in dir grouped by the instance named in
// their file names, each list in chain order.
func ListChains(dir string) (map[string][]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list audit directory: %w", err)
	}
	chains := make(map[string][]string)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		inst, _, ok := parseSegmentName(e.Name())
		if !ok {
			continue
		}
		chains[inst] = append(chains[inst], filepath.Join(dir, e.Name()))
	}
	for _, files := range chains {
		sort.Strings(files)
	}
	return chains, nil
}

// chainHead is the last intact record of a chain.
type chainHead struct {
	seq          uint64
	hash         string
	isCheckpoint bool
}

// recoverHead finds the last intact record of instance's chain in dir. It
// cuts a torn last line (a crash in the middle of a write) from the file it
// is in and logs a warning. It returns the newest file name ("" when there
// is none) and the zero head for an empty chain.
func recoverHead(dir, instance string, log *slog.Logger) (newest string, head chainHead, err error) {
	chains, err := ListChains(dir)
	if err != nil {
		return "", chainHead{}, err
	}
	files := chains[fileInstance(instance)]
	if len(files) == 0 {
		return "", chainHead{}, nil
	}
	newest = files[len(files)-1]
	for i := len(files) - 1; i >= 0; i-- {
		head, found, err := recoverFileTail(files[i], log)
		if err != nil {
			return "", chainHead{}, err
		}
		if found {
			return newest, head, nil
		}
	}
	return newest, chainHead{}, nil
}

// recoverFileTail returns the last complete record of path. Bytes after the
// last line end were never acknowledged, so they are cut off.
func recoverFileTail(path string, log *slog.Logger) (chainHead, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return chainHead{}, false, fmt.Errorf("open audit file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return chainHead{}, false, fmt.Errorf("stat audit file: %w", err)
	}
	size := info.Size()

	lastLine, end, err := readLastLine(f, size)
	if err != nil {
		return chainHead{}, false, fmt.Errorf("read audit file %s: %w", path, err)
	}
	if end < size {
		log.Warn("audit file ends with a torn record; cutting it off",
			"path", path, "offset", end, "bytes", size-end)
		if err := f.Truncate(end); err != nil {
			return chainHead{}, false, fmt.Errorf("cut torn record from %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return chainHead{}, false, fmt.Errorf("sync %s: %w", path, err)
		}
	}
	if lastLine == nil {
		return chainHead{}, false, nil
	}

	head, err := parseHead(lastLine)
	if err != nil {
		return chainHead{}, false, fmt.Errorf("last record of %s at offset %d is invalid, "+
			"so the chain cannot continue; check it with `pdp audit verify`: %w",
			path, end-int64(len(lastLine))-1, err)
	}
	return head, true, nil
}

// readLastLine returns the last newline-terminated line of f (without the
// newline) and the offset just past it. line is nil when f holds no
// complete line.
func readLastLine(f *os.File, size int64) (line []byte, end int64, err error) {
	for chunk := int64(tailChunk); ; chunk *= 2 {
		start := max(size-chunk, 0)
		buf := make([]byte, size-start)
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		last := bytes.LastIndexByte(buf, '\n')
		if last < 0 {
			if start == 0 {
				return nil, 0, nil
			}
			continue
		}
		prev := bytes.LastIndexByte(buf[:last], '\n')
		if prev < 0 && start > 0 {
			continue
		}
		return buf[prev+1 : last], start + int64(last) + 1, nil
	}
}

// parseHead checks one record's own hash and returns its place in the chain.
func parseHead(line []byte) (chainHead, error) {
	rec, err := parseRecord(line)
	if err != nil {
		return chainHead{}, err
	}
	return chainHead{seq: rec.seq, hash: rec.hash, isCheckpoint: rec.typ == TypeCheckpoint}, nil
}
