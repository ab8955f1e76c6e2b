package audit

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fsyncCall is one call of Options.OnFsync.
type fsyncCall struct {
	d       time.Duration
	records int
}

// fsyncRecorder collects OnFsync calls.
type fsyncRecorder struct {
	mu    sync.Mutex
	calls []fsyncCall
}

func (r *fsyncRecorder) record(d time.Duration, records int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fsyncCall{d: d, records: records})
}

func (r *fsyncRecorder) snapshot() []fsyncCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]fsyncCall(nil), r.calls...)
}

func openLogWithRecorder(t *testing.T, cfg Config) (*Log, *fsyncRecorder) {
	t.Helper()
	rec := &fsyncRecorder{}
	l, err := Open(cfg, Options{Instance: testInstance, Logger: quietLogger(), OnFsync: rec.record})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l, rec
}

func TestOnFsync(t *testing.T) {
	for _, durability := range []Durability{DurabilityAlways, DurabilityBatch, DurabilityNone} {
		t.Run(string(durability), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Durability = durability
			l, rec := openLogWithRecorder(t, cfg)

			// Sequential Record calls never share a batch.
			record(t, l, 3)
			calls := rec.snapshot()
			if len(calls) != 3 {
				t.Fatalf("OnFsync calls = %d, want 3", len(calls))
			}
			for i, c := range calls {
				if c.records != 1 {
					t.Errorf("call %d: records = %d, want 1", i, c.records)
				}
				if c.d <= 0 {
					t.Errorf("call %d: duration = %v, want > 0", i, c.d)
				}
			}

			// Close appends a final checkpoint, a write without decision
			// records.
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			calls = rec.snapshot()
			if len(calls) != 4 {
				t.Fatalf("OnFsync calls after Close = %d, want 4", len(calls))
			}
			if calls[3].records != 0 {
				t.Errorf("checkpoint write: records = %d, want 0", calls[3].records)
			}
		})
	}
}

func TestQueueDepth(t *testing.T) {
	cfg := testConfig(t)
	l, rec := openLogWithRecorder(t, cfg)
	defer l.Close()
	if got := l.QueueDepth(); got != 0 {
		t.Fatalf("QueueDepth of an idle log = %d, want 0", got)
	}

	// Hold the writer goroutine, so the records stay queued.
	release := make(chan struct{})
	held := make(chan struct{})
	go l.do(func(*writer) {
		close(held)
		<-release
	})
	<-held

	const records = 5
	var wg sync.WaitGroup
	for i := 0; i < records; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Record(context.Background(), testEvent(i)); err != nil {
				t.Errorf("Record %d: %v", i, err)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.QueueDepth() != records {
		if time.Now().After(deadline) {
			t.Fatalf("QueueDepth = %d, want %d while the writer is held", l.QueueDepth(), records)
		}
		time.Sleep(time.Millisecond)
	}

	close(release)
	wg.Wait()
	if got := l.QueueDepth(); got != 0 {
		t.Errorf("QueueDepth after the writes = %d, want 0", got)
	}
	written := 0
	for _, c := range rec.snapshot() {
		written += c.records
	}
	if written != records {
		t.Errorf("records passed to OnFsync = %d, want %d", written, records)
	}
}

func TestCutTornLineDropsPartialAnchor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoints-x.jsonl")
	if err := os.WriteFile(path, []byte("{\"seq\":1}\n{\"seq\":2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cutTornLine(path); err != nil {
		t.Fatalf("cutTornLine: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "{\"seq\":1}\n" {
		t.Errorf("file after repair = %q, want only the complete line", got)
	}
	if err := cutTornLine(filepath.Join(t.TempDir(), "missing.jsonl")); err != nil {
		t.Errorf("missing file: %v, want nil", err)
	}
}
