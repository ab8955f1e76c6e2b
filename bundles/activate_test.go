package bundles

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// activation is one call of Options.OnActivate.
type activation struct {
	revision string
	err      error
}

// activationRecorder collects OnActivate calls from several goroutines.
type activationRecorder struct {
	mu    sync.Mutex
	calls []activation
}

func (r *activationRecorder) record(revision string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, activation{revision: revision, err: err})
}

func (r *activationRecorder) snapshot() []activation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]activation(nil), r.calls...)
}

// startWithRecorder starts a Manager for cfg whose OnActivate calls go to
// the returned recorder, and returns Start's error.
func startWithRecorder(t *testing.T, cfg Config) (*Manager, *activationRecorder, error) {
	t.Helper()
	rec := &activationRecorder{}
	m, err := NewManager(cfg, Options{Logger: slog.New(slog.DiscardHandler), OnActivate: rec.record})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	t.Cleanup(m.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m, rec, m.Start(ctx)
}

// checkActivation fails the test unless got has revision and an error
// exactly when wantErr is set.
func checkActivation(t *testing.T, step string, got activation, revision string, wantErr bool) {
	t.Helper()
	if got.revision != revision {
		t.Errorf("%s: OnActivate revision = %q, want %q", step, got.revision, revision)
	}
	if wantErr && got.err == nil {
		t.Errorf("%s: OnActivate error is nil, want the rejection", step)
	}
	if !wantErr && got.err != nil {
		t.Errorf("%s: OnActivate error = %v, want nil", step, got.err)
	}
}

func TestOnActivate(t *testing.T) {
	t.Run("directory reload", func(t *testing.T) {
		dir := bundleDir(t, policyFiles("hook-1"))
		m, rec, err := startWithRecorder(t, Config{Path: dir, Watch: noWatch})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		calls := rec.snapshot()
		if len(calls) != 1 {
			t.Fatalf("OnActivate calls after Start = %d, want 1", len(calls))
		}
		checkActivation(t, "start", calls[0], "hook-1", false)

		writeFiles(t, dir, map[string]string{"pdp/authz/policy.rego": "package pdp.authz\n\ndecision := {\n"})
		if err := m.Reload(context.Background()); err == nil {
			t.Fatal("Reload of a broken bundle returned nil")
		}
		calls = rec.snapshot()
		if len(calls) != 2 {
			t.Fatalf("OnActivate calls after a rejected reload = %d, want 2", len(calls))
		}
		checkActivation(t, "rejected reload", calls[1], "hook-1", true)

		writeFiles(t, dir, policyFiles("hook-2"))
		if err := m.Reload(context.Background()); err != nil {
			t.Fatalf("Reload of a fixed bundle: %v", err)
		}
		calls = rec.snapshot()
		if len(calls) != 3 {
			t.Fatalf("OnActivate calls after a fixed reload = %d, want 3", len(calls))
		}
		checkActivation(t, "fixed reload", calls[2], "hook-2", false)
	})

	t.Run("embedded", func(t *testing.T) {
		rec := &activationRecorder{}
		m, err := NewManager(Config{}, Options{Embedded: embeddedIf(true), OnActivate: rec.record})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Stop()
		if err := m.Start(context.Background()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		calls := rec.snapshot()
		if len(calls) != 1 {
			t.Fatalf("OnActivate calls = %d, want 1", len(calls))
		}
		checkActivation(t, "start", calls[0], m.Revision(), false)
	})

	t.Run("first load fails", func(t *testing.T) {
		dir := bundleDir(t, map[string]string{"p.rego": "package pdp.authz\n\ndecision := {\n"})
		_, rec, err := startWithRecorder(t, Config{Path: dir, Watch: noWatch})
		if err == nil {
			t.Fatal("Start of a broken bundle returned nil")
		}
		calls := rec.snapshot()
		if len(calls) != 1 {
			t.Fatalf("OnActivate calls = %d, want 1", len(calls))
		}
		checkActivation(t, "start", calls[0], "", true)
	})

	t.Run("remote download fails", func(t *testing.T) {
		srv := &bundleServer{}
		srv.set(t, policyFiles("remote-hook-1"), `"h1"`)
		ts := httptest.NewServer(srv)
		defer ts.Close()

		m, rec, err := startWithRecorder(t, remoteConfig(ts.URL))
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		calls := rec.snapshot()
		if len(calls) != 1 {
			t.Fatalf("OnActivate calls after Start = %d, want 1", len(calls))
		}
		checkActivation(t, "start", calls[0], "remote-hook-1", false)

		// The downloader retries a failed download on its own, so only
		// the first call after Reload is checked.
		srv.setStatus(http.StatusInternalServerError)
		if err := m.Reload(context.Background()); err == nil {
			t.Fatal("Reload with a server error returned nil")
		}
		calls = rec.snapshot()
		if len(calls) < 2 {
			t.Fatalf("OnActivate calls after a failed download = %d, want at least 2", len(calls))
		}
		checkActivation(t, "failed download", calls[1], "remote-hook-1", true)
		if calls[1].err != nil && strings.Contains(calls[1].err.Error(), testBearerToken) {
			t.Errorf("OnActivate error contains the bearer token: %v", calls[1].err)
		}
	})
}
