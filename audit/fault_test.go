package audit

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// Root ignores file modes, so these tests break the sink in ways that stop
// root too: a write to /dev/full fails with ENOSPC, a closed descriptor
// fails with EBADF, and a directory replaced by a file cannot be reopened.
func TestRecordFailsWhenDiskFails(t *testing.T) {
	cases := []struct {
		name string
		// inject runs on the writer goroutine, so it must not call t.Fatal.
		inject func(w *writer)
		want   string
	}{
		{
			name: "disk full",
			inject: func(w *writer) {
				full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
				if err != nil {
					panic(err)
				}
				w.file.Close()
				w.file = full
			},
			want: "no space left on device",
		},
		{
			name: "closed file",
			inject: func(w *writer) {
				w.file.Close()
			},
			want: "file already closed",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			l, logs := openLog(t, cfg)
			defer l.Close()
			record(t, l, 3)

			// Break the open file and keep the directory from being
			// reopened, so the failure lasts until the test repairs it.
			l.do(c.inject)
			moved := cfg.Dir + ".moved"
			if err := os.Rename(cfg.Dir, moved); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cfg.Dir, []byte("not a directory"), 0o640); err != nil {
				t.Fatal(err)
			}

			err := l.Record(context.Background(), testEvent(100))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Record = %v, want an error containing %q", err, c.want)
			}
			if err := l.Ready(); err == nil {
				t.Fatal("Ready = nil while the sink cannot write")
			}
			if err := l.Record(context.Background(), testEvent(101)); err == nil {
				t.Fatal("Record succeeded while the directory is a file")
			}
			if !strings.Contains(logs.String(), "audit sink cannot write") {
				t.Errorf("the failure was not logged:\n%s", logs)
			}

			// Repair the directory: the background retry recovers Ready
			// without new records.
			if err := os.Remove(cfg.Dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(moved, cfg.Dir); err != nil {
				t.Fatal(err)
			}
			waitReady(t, l)
			record(t, l, 2)
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			res := verifyDir(t, cfg)
			if res.Decisions != 5 {
				t.Errorf("decisions = %d, want 5 (failed records must not be in the chain)", res.Decisions)
			}
			if st := l.Stats(); st.WriteErrors == 0 {
				t.Error("WriteErrors = 0, want the failures counted")
			}
		})
	}
}

func waitReady(t *testing.T, l *Log) {
	t.Helper()
	deadline := time.Now().Add(3 * retryInterval)
	for l.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ready = %v, want recovery within %s", l.Ready(), 3*retryInterval)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A failed write may leave part of a batch in the file; repair cuts it off
// so the chain continues from the last acknowledged record.
func TestRepairCutsPartialWrite(t *testing.T) {
	cfg := testConfig(t)
	l, _ := openLog(t, cfg)
	defer l.Close()
	record(t, l, 2)

	var werr error
	l.do(func(w *writer) {
		_, werr = w.file.WriteString(`{"partial":`)
		w.fail(os.ErrInvalid)
	})
	if werr != nil {
		t.Fatal(werr)
	}
	record(t, l, 2)
	l.Close()
	if res := verifyDir(t, cfg); res.Decisions != 4 {
		t.Errorf("decisions = %d, want 4", res.Decisions)
	}
}
