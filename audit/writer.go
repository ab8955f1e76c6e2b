package audit

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

const (
	// retryInterval is how often a failed sink is repaired while idle.
	retryInterval = time.Second
	// errorLogInterval rate-limits repeated write error logs.
	errorLogInterval = 10 * time.Second
	// probeSize is the size of the file written to test that a repaired
	// directory has space.
	probeSize = 4096
)

// writer owns the chain state and the open file. Only its goroutine
// touches it after start.
type writer struct {
	cfg      Config
	instance string
	log      *slog.Logger
	now      func() time.Time
	onFsync  func(time.Duration, int)
	l        *Log

	key   ed25519.PrivateKey
	keyID string
	lock  *os.File

	file   *os.File
	path   string
	opened time.Time
	// size is the length of the acknowledged records in file: a repair
	// cuts the file back to it.
	size int64

	// seq and hash are the chain head.
	seq  uint64
	hash string
	// headIsCheckpoint is true when the head is a checkpoint.
	headIsCheckpoint bool
	sinceCheckpoint  int
	lastCheckpoint   time.Time
	checkpoints      *os.File

	// broken is the error that stopped the sink; nil while it can write.
	broken        error
	failures      int
	lastErrorLog  time.Time
	pendingFields []map[string]any
	buf           []byte
	// scratch holds the hashed body of the record being sealed.
	scratch []byte
}

func newWriter(cfg Config, opts Options) (*writer, error) {
	w := &writer{
		cfg: cfg, instance: opts.Instance, log: opts.Logger, now: opts.Now,
		onFsync: opts.OnFsync, hash: GenesisHash,
	}
	if cfg.checkpointsEnabled() {
		key, err := loadSigningKey(cfg.CheckpointKeyFile, cfg.CheckpointKeyGenerate, w.log)
		if err != nil {
			return nil, err
		}
		w.key = key
		w.keyID = KeyID(key.Public().(ed25519.PublicKey))
	}
	return w, nil
}

// start prepares the directory, recovers the head and opens the newest file
// (or creates the first), then anchors a recovered head with a checkpoint.
func (w *writer) start() error {
	if err := os.MkdirAll(w.cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("create audit directory: %w", err)
	}
	lock, err := lockChain(w.cfg.Dir, w.instance)
	if err != nil {
		return err
	}
	w.lock = lock

	newest, head, err := recoverHead(w.cfg.Dir, w.instance, w.log)
	if err != nil {
		return err
	}
	if head.seq > 0 {
		w.seq, w.hash, w.headIsCheckpoint = head.seq, head.hash, head.isCheckpoint
	}
	if newest == "" {
		if err := w.createSegment(); err != nil {
			return err
		}
	} else if err := w.openSegment(newest); err != nil {
		return err
	}
	w.lastCheckpoint = w.now()

	cpPath := filepath.Join(w.cfg.Dir, "checkpoints-"+fileInstance(w.instance)+fileSuffix)
	if err := cutTornLine(cpPath); err != nil {
		return fmt.Errorf("repair checkpoint export file: %w", err)
	}
	w.checkpoints, err = os.OpenFile(cpPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open checkpoint export file: %w", err)
	}

	if w.seq > 0 && !w.headIsCheckpoint && w.key != nil {
		if errs := w.appendBatch(nil, true); errs[0] != nil {
			return fmt.Errorf("write recovery checkpoint: %w", errs[0])
		}
	}
	return nil
}

func (w *writer) openSegment(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open audit file: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat audit file: %w", err)
	}
	w.file, w.path, w.size, w.opened = f, path, info.Size(), info.ModTime()
	if _, _, ok := parseSegmentName(filepath.Base(path)); ok {
		stamp := path[len(path)-len(fileSuffix)-len(fileTimeFormat) : len(path)-len(fileSuffix)]
		if t, err := time.Parse(fileTimeFormat, stamp); err == nil {
			w.opened = t
		}
	}
	return nil
}

// createSegment starts a new file whose first record will be seq+1, and
// syncs the directory so the new name survives a crash.
func (w *writer) createSegment() error {
	now := w.now()
	path := filepath.Join(w.cfg.Dir, segmentName(w.instance, w.seq+1, now))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("create audit file: %w", err)
	}
	if err := syncDir(w.cfg.Dir); err != nil {
		f.Close()
		return err
	}
	w.file, w.path, w.size, w.opened = f, path, 0, now
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open audit directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync audit directory: %w", err)
	}
	return nil
}

// run is the writer goroutine.
func (w *writer) run() {
	defer close(w.l.stopped)
	tick := retryInterval
	if w.cfg.CheckpointInterval > 0 && w.key != nil {
		tick = min(tick, w.cfg.CheckpointInterval)
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()

	for {
		select {
		case req := <-w.l.requests:
			w.commit(w.collect(req))
		case fn := <-w.l.control:
			fn(w)
		case <-ticker.C:
			w.tick()
		case <-w.l.quit:
			w.drain()
			w.l.closeErr = w.shutdown()
			return
		}
	}
}

// collect returns first and the records queued behind it, at most
// BatchMaxRecords. With durability batch and a BatchMaxWait, it waits for
// more records until BatchMaxWait has passed since first was queued. Under
// load that time has usually passed during the previous write.
func (w *writer) collect(first *request) []*request {
	batch := []*request{first}
	if w.cfg.Durability == DurabilityAlways {
		return batch
	}
	limit := w.cfg.BatchMaxRecords
queued:
	for len(batch) < limit {
		select {
		case r := <-w.l.requests:
			batch = append(batch, r)
		default:
			break queued
		}
	}
	if w.cfg.Durability != DurabilityBatch || w.cfg.BatchMaxWait <= 0 || len(batch) >= limit {
		return batch
	}
	wait := time.Until(first.queued.Add(w.cfg.BatchMaxWait))
	if wait <= 0 {
		return batch
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(batch) < limit {
		select {
		case r := <-w.l.requests:
			batch = append(batch, r)
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// drain commits every record still queued at Close.
func (w *writer) drain() {
	for {
		select {
		case req := <-w.l.requests:
			w.commit(w.collect(req))
		default:
			return
		}
	}
}

// commit writes one batch and sends each caller its result.
func (w *writer) commit(batch []*request) {
	w.l.queued.Add(-int64(len(batch)))
	errs := make([]error, len(batch))
	if err := w.prepare(); err != nil {
		for i := range errs {
			errs[i] = err
		}
	} else {
		errs = w.appendBatch(batch, false)
	}
	for i, r := range batch {
		r.done <- errs[i]
	}
}

// prepare repairs a failed sink and rotates the file when it is due.
func (w *writer) prepare() error {
	if w.broken != nil {
		if err := w.repair(); err != nil {
			w.fail(err)
			return w.broken
		}
	}
	if !w.rotationDue() {
		return nil
	}
	if err := w.rotate(); err != nil {
		w.fail(err)
		return w.broken
	}
	return nil
}

func (w *writer) rotationDue() bool {
	if w.size == 0 {
		return false
	}
	if w.cfg.RotateSize > 0 && w.size >= w.cfg.RotateSize {
		return true
	}
	return w.cfg.RotateInterval > 0 && w.now().Sub(w.opened) >= w.cfg.RotateInterval
}

// rotate closes the current file and starts the next; the next file's first
// record links to the last record of this one.
func (w *writer) rotate() error {
	old := w.path
	if err := w.file.Sync(); err != nil {
		return fmt.Errorf("sync audit file before rotation: %w", err)
	}
	if err := w.file.Close(); err != nil {
		return fmt.Errorf("close audit file before rotation: %w", err)
	}
	w.file = nil
	if err := w.createSegment(); err != nil {
		return err
	}
	w.log.Info("audit file rotated", "previous", filepath.Base(old),
		"file", filepath.Base(w.path), "seq", w.seq+1)
	return nil
}

// appendBatch seals the batch's records (and a checkpoint when one is due
// or force is set) onto the chain, writes them with one write and syncs.
// The chain head advances only when the write succeeded. It returns one
// error per request, or a single error for an empty batch.
func (w *writer) appendBatch(batch []*request, force bool) []error {
	errs := make([]error, max(len(batch), 1))
	now := w.now()
	seq, hash := w.seq, w.hash
	buf := w.buf[:0]
	fields := w.pendingFields[:0]
	written := 0

	for _, req := range batch {
		prev := hash
		buf, hash, w.scratch = req.rec.seal(buf, seq+1, prev, w.scratch)
		seq++
		if w.l.stream != nil {
			f := req.rec.fields
			f[fieldSeq], f[fieldPrevHash], f[fieldHash] = seq, prev, hash
			fields = append(fields, f)
		}
		written++
	}

	var cp *Checkpoint
	due := w.cfg.CheckpointEvery > 0 && w.sinceCheckpoint+written >= w.cfg.CheckpointEvery
	if w.key != nil && (force || due) && seq > 0 {
		f, line, c, err := w.sealCheckpoint(now, seq, hash)
		if err != nil {
			return fillErrors(errs, fmt.Errorf("audit: seal checkpoint: %w", err))
		}
		seq, hash, cp = c.Seq, c.Hash, c
		buf = append(buf, line...)
		fields = append(fields, f)
	}
	w.buf, w.pendingFields = buf, fields
	if len(buf) == 0 {
		return errs
	}

	started := time.Now()
	if err := w.write(buf); err != nil {
		w.fail(err)
		return fillErrors(errs, w.broken)
	}
	if w.onFsync != nil {
		w.onFsync(time.Since(started), written)
	}

	w.seq, w.hash = seq, hash
	w.size += int64(len(buf))
	w.sinceCheckpoint += written
	w.headIsCheckpoint = cp != nil
	w.l.records.Add(uint64(written))
	w.l.batches.Add(1)
	if cp != nil {
		w.checkpointWritten(cp, now)
	}
	if w.l.stream != nil {
		w.l.stream.send(fields)
	}
	return errs
}

// fillErrors sets err for every request that has no error yet.
func fillErrors(errs []error, err error) []error {
	for i := range errs {
		if errs[i] == nil {
			errs[i] = err
		}
	}
	return errs
}

// write appends buf to the file with one write and syncs as configured.
func (w *writer) write(buf []byte) error {
	if _, err := w.file.Write(buf); err != nil {
		return fmt.Errorf("audit: write %s: %w", filepath.Base(w.path), err)
	}
	if w.cfg.Durability == DurabilityNone {
		return nil
	}
	if err := w.file.Sync(); err != nil {
		return fmt.Errorf("audit: sync %s: %w", filepath.Base(w.path), err)
	}
	return nil
}

func (w *writer) sealCheckpoint(now time.Time, headSeq uint64, headHash string) (map[string]any, []byte, *Checkpoint, error) {
	f := checkpointFields(w.instance, now, headSeq, headHash, w.keyID)
	f[fieldSeq] = headSeq + 1
	f[fieldPrevHash] = headHash
	if err := signCheckpoint(f, w.key); err != nil {
		return nil, nil, nil, err
	}
	line, h, err := sealRecord(f, headSeq+1, headHash)
	if err != nil {
		return nil, nil, nil, err
	}
	f[fieldHash] = h
	cp := &Checkpoint{
		Instance: w.instance, Seq: headSeq + 1, RecordCount: headSeq, HeadHash: headHash,
		Hash: h, Time: now.UTC(), Line: line,
	}
	return f, line, cp, nil
}

// checkpointWritten publishes a checkpoint that is on disk and appends it
// to the export file. An export failure is logged: the chain holds the
// checkpoint either way.
func (w *writer) checkpointWritten(cp *Checkpoint, now time.Time) {
	w.sinceCheckpoint = 0
	w.lastCheckpoint = now
	w.l.checkpoints.Add(1)
	w.l.checkpoint.Store(cp)
	if _, err := w.checkpoints.Write(cp.Line); err != nil {
		w.log.Warn("audit checkpoint export failed", "seq", cp.Seq, "error", err)
		return
	}
	// Checkpoints are rare, so each export is synced: an anchor that is
	// meant to be copied off the host should survive a crash.
	if err := w.checkpoints.Sync(); err != nil {
		w.log.Warn("audit checkpoint export sync failed", "seq", cp.Seq, "error", err)
	}
}

// cutTornLine truncates the file at path after its last newline, so a line
// torn by a crash mid-write is dropped before new lines are appended. A
// missing file is left alone.
func cutTornLine(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) || len(data) == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	keep := bytes.LastIndexByte(data, '\n') + 1
	if keep == len(data) {
		return nil
	}
	return os.Truncate(path, int64(keep))
}

// fail marks the sink as unable to write. It closes the file, because
// after a failed write or fsync the file's state is unknown. repair reopens
// it and cuts it back to the acknowledged records.
func (w *writer) fail(err error) {
	w.l.writeErrors.Add(1)
	if w.file != nil {
		_ = w.file.Close()
		w.file = nil
	}
	w.broken = err
	w.failures++
	w.l.setReady(err)
	if w.failures == 1 || w.now().Sub(w.lastErrorLog) >= errorLogInterval {
		w.log.Error("audit sink cannot write; decisions are denied with audit.unavailable",
			"path", w.path, "failures", w.failures, "error", err)
		w.lastErrorLog = w.now()
	}
}

// repair reopens the current file, cuts it back to the acknowledged records
// and checks that the directory accepts a small synced write.
func (w *writer) repair() error {
	if w.file != nil {
		_ = w.file.Close()
		w.file = nil
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("audit: reopen %s: %w", w.path, err)
	}
	if err := w.cutBack(f); err != nil {
		f.Close()
		return err
	}
	if err := probeDir(w.cfg.Dir, w.instance); err != nil {
		f.Close()
		return err
	}

	w.file = f
	w.log.Info("audit sink recovered", "path", w.path, "failures", w.failures, "seq", w.seq)
	w.broken, w.failures = nil, 0
	w.l.setReady(nil)
	return nil
}

// cutBack truncates f to the acknowledged size, dropping bytes of a failed
// write, and fails when the file lost acknowledged records.
func (w *writer) cutBack(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("audit: stat %s: %w", w.path, err)
	}
	if info.Size() < w.size {
		return fmt.Errorf("audit: %s has %d bytes, fewer than the %d already acknowledged",
			w.path, info.Size(), w.size)
	}
	if info.Size() > w.size {
		if err := f.Truncate(w.size); err != nil {
			return fmt.Errorf("audit: cut %s back to %d bytes: %w", w.path, w.size, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("audit: sync %s: %w", w.path, err)
	}
	return nil
}

// probeDir writes, syncs and removes a small file in dir.
func probeDir(dir, instance string) error {
	path := filepath.Join(dir, ".probe-"+fileInstance(instance))
	err := writeSynced(path, make([]byte, probeSize), os.O_TRUNC, 0o640)
	if rmErr := os.Remove(path); err == nil && rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = rmErr
	}
	if err != nil {
		return fmt.Errorf("audit: probe write in %s: %w", dir, err)
	}
	return nil
}

// tick retries a failed sink and writes a time-based checkpoint.
func (w *writer) tick() {
	if w.broken != nil {
		if err := w.repair(); err != nil {
			w.fail(err)
			return
		}
	}
	if w.key == nil || w.cfg.CheckpointInterval <= 0 || w.sinceCheckpoint == 0 {
		return
	}
	if w.now().Sub(w.lastCheckpoint) < w.cfg.CheckpointInterval {
		return
	}
	if err := w.prepare(); err != nil {
		return
	}
	w.appendBatch(nil, true)
}

// shutdown writes a final checkpoint when records followed the last one,
// then closes the files.
func (w *writer) shutdown() error {
	var errs []error
	if w.broken == nil && w.key != nil && !w.headIsCheckpoint && w.seq > 0 {
		if err := w.prepare(); err == nil {
			if e := w.appendBatch(nil, true); e[0] != nil {
				errs = append(errs, e[0])
			}
		}
	}
	if w.broken != nil {
		errs = append(errs, w.broken)
	}
	if w.file != nil {
		if err := w.file.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("audit: sync on close: %w", err))
		}
	}
	errs = append(errs, w.close())
	w.log.Info("audit log closed", "instance", w.instance, "seq", w.seq)
	return errors.Join(errs...)
}

// close releases the files and the chain lock.
func (w *writer) close() error {
	var errs []error
	if w.file != nil {
		errs = append(errs, w.file.Close())
		w.file = nil
	}
	if w.checkpoints != nil {
		errs = append(errs, w.checkpoints.Close())
		w.checkpoints = nil
	}
	if w.lock != nil {
		errs = append(errs, w.lock.Close())
		w.lock = nil
	}
	return errors.Join(errs...)
}
