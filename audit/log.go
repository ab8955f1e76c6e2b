package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authgate/pdp/pdp"
)

// ErrClosed is returned by Record and Ready after Close.
var ErrClosed = errors.New("audit log is closed")

// Options are the non-configuration inputs of a Log.
type Options struct {
	// Instance names this replica's chain; it is written to every record
	// and, with bytes outside [A-Za-z0-9._-] replaced by "_", to file names.
	// Default: the host name.
	Instance string
	// Logger receives lifecycle messages and sink errors; nil means
	// slog.Default().
	Logger *slog.Logger
	// Redis is the client for the stream copy; required when
	// Config.RedisStream.Enabled is set.
	Redis redis.UniversalClient
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// OnFsync, when not nil, receives each successful batch write. d is
	// the time of the write and its fsync, or of the write alone with
	// durability none. records is the number of decision records, 0 for a
	// write that contains only a checkpoint. It runs on the writer
	// goroutine before the batch's Record calls return, so it must be quick
	// and must not call Record or Close.
	OnFsync func(d time.Duration, records int)
}

// Stats counts what a Log has done since Open.
type Stats struct {
	// Records is the number of decision records written and acknowledged.
	Records uint64
	// Checkpoints is the number of checkpoints written.
	Checkpoints uint64
	// Batches is the number of writes (each followed by one fsync with
	// durability batch or always).
	Batches uint64
	// WriteErrors counts failed batch writes, syncs, rotations and repairs.
	WriteErrors uint64
	// StreamErrors counts records the Redis stream rejected or timed out.
	StreamErrors uint64
	// StreamDropped counts records not sent to Redis because its queue was
	// full.
	StreamDropped uint64
}

// Log is the audit writer: one hash chain per instance, written to JSON
// Lines files by a single goroutine that commits concurrent records
// together. It is safe for concurrent use.
type Log struct {
	requests chan *request
	// control runs functions on the writer goroutine; tests use it to
	// inject faults.
	control chan func(*writer)
	quit    chan struct{}
	// stopped is closed when the writer goroutine has exited.
	stopped   chan struct{}
	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool

	// notReady holds the error Ready returns; nil when the sink can write.
	notReady   atomic.Pointer[error]
	checkpoint atomic.Pointer[Checkpoint]

	records, checkpoints, batches, writeErrors atomic.Uint64
	// queued counts records from Record until the writer takes them into
	// a batch write.
	queued atomic.Int64
	stream *streamSink

	// instance and now are the writer's, for encoding records in Record.
	instance string
	now      func() time.Time
}

var _ pdp.Auditor = (*Log)(nil)

// request is one Record call waiting for the writer.
type request struct {
	// rec is the record, encoded by the caller except for its chain
	// members.
	rec    *preRecord
	queued time.Time
	done   chan error
}

// Open validates cfg, takes the chain's lock file, recovers the chain head
// from the newest file (cutting a torn last line) and starts the writer.
func Open(cfg Config, opts Options) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("audit config: %w", err)
	}
	cfg = cfg.withDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Instance == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			return nil, errors.New("audit: no instance id given and the host name is unknown")
		}
		opts.Instance = host
	}
	if cfg.RedisStream.Enabled && opts.Redis == nil {
		return nil, errors.New("audit: redis_stream.enabled needs a Redis client")
	}

	w, err := newWriter(cfg, opts)
	if err != nil {
		return nil, err
	}
	l := &Log{
		requests: make(chan *request, max(cfg.BatchMaxRecords*4, 1024)),
		control:  make(chan func(*writer)),
		quit:     make(chan struct{}),
		stopped:  make(chan struct{}),
		instance: opts.Instance,
		now:      opts.Now,
	}
	w.l = l
	if cfg.RedisStream.Enabled {
		l.stream = newStreamSink(opts.Redis, cfg.RedisStream, opts.Instance, opts.Logger)
	}
	if err := w.start(); err != nil {
		w.close()
		return nil, err
	}
	go w.run()
	opts.Logger.Info("audit log opened", "dir", cfg.Dir, "instance", opts.Instance,
		"durability", string(cfg.Durability), "seq", w.seq, "file", filepath.Base(w.path))
	return l, nil
}

// Record appends one decision record and returns once it is written to the
// configured durability. An error means the record may not be on disk and
// the decision must not allow. When ctx ends while the record is queued,
// Record returns ctx's error, but the record may still be written.
func (l *Log) Record(ctx context.Context, ev *pdp.AuditEvent) error {
	if ev == nil {
		return errors.New("audit: nil event")
	}
	if l.closed.Load() {
		return ErrClosed
	}
	rec, err := encodeRecord(decisionFields(ev, l.instance, l.now()))
	if err != nil {
		return fmt.Errorf("audit: encode record: %w", err)
	}
	req := &request{rec: rec, queued: time.Now(), done: make(chan error, 1)}
	// The count rises before the send, so the writer never takes it below
	// zero.
	l.queued.Add(1)
	select {
	case l.requests <- req:
	case <-ctx.Done():
		l.queued.Add(-1)
		return fmt.Errorf("audit: queue record: %w", ctx.Err())
	case <-l.stopped:
		l.queued.Add(-1)
		return ErrClosed
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("audit: wait for record: %w", ctx.Err())
	case <-l.stopped:
		// The writer may have committed the request just before it exited.
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// Ready returns nil when the last write succeeded, the write error while
// the sink cannot write, and ErrClosed after Close. A failed sink is retried
// in the background about once a second, so Ready recovers without traffic.
func (l *Log) Ready() error {
	if l.closed.Load() {
		return ErrClosed
	}
	if p := l.notReady.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *Log) setReady(err error) {
	if err == nil {
		l.notReady.Store(nil)
		return
	}
	l.notReady.Store(&err)
}

// LastCheckpoint returns the newest checkpoint written since Open.
func (l *Log) LastCheckpoint() (Checkpoint, bool) {
	cp := l.checkpoint.Load()
	if cp == nil {
		return Checkpoint{}, false
	}
	return *cp, true
}

// QueueDepth returns the number of records that Record has queued and the
// writer has not yet taken into a batch write. It is safe to call at any
// time, for example from a metrics scrape.
func (l *Log) QueueDepth() int {
	return int(max(l.queued.Load(), 0))
}

// Stats returns the counters since Open.
func (l *Log) Stats() Stats {
	s := Stats{
		Records:     l.records.Load(),
		Checkpoints: l.checkpoints.Load(),
		Batches:     l.batches.Load(),
		WriteErrors: l.writeErrors.Load(),
	}
	if l.stream != nil {
		s.StreamErrors, s.StreamDropped = l.stream.errors.Load(), l.stream.dropped.Load()
	}
	return s
}

// Close writes the queued records and a final checkpoint, syncs and closes
// the file and stops the stream copy. It is safe to call more than once.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.quit)
		<-l.stopped
		if l.stream != nil {
			l.stream.close()
		}
	})
	return l.closeErr
}

// do runs fn on the writer goroutine and waits for it.
func (l *Log) do(fn func(*writer)) {
	done := make(chan struct{})
	l.control <- func(w *writer) {
		fn(w)
		close(done)
	}
	<-done
}

// lockChain takes an exclusive lock on the chain's lock file, so two
// processes with the same instance id cannot interleave records.
func lockChain(dir, instance string) (*os.File, error) {
	path := filepath.Join(dir, ".lock-"+fileInstance(instance))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open audit lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock audit chain %s: another process writes it: %w", path, err)
	}
	return f, nil
}
