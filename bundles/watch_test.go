package bundles

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startPollingManager starts a watching Manager for the directory at path
// whose missing-directory poll runs every poll, and returns its log output.
func startPollingManager(t *testing.T, path string, poll time.Duration) (*Manager, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := NewManager(Config{Path: path}, Options{Logger: logger})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	m.missingPoll = poll
	t.Cleanup(m.Stop)
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v\nlogs:\n%s", err, logs)
	}
	return m, logs
}

// lastErrorIsNotExist reports whether the last activation attempt failed
// because the bundle directory was missing.
func lastErrorIsNotExist(m *Manager) bool {
	_, err := m.LastActivation()
	return errors.Is(err, fs.ErrNotExist)
}

// countLines returns the number of log lines that contain every part.
func countLines(logs string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if containsAll(line, parts...) {
			n++
		}
	}
	return n
}

func TestWatchDirectoryRemovedAndCreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bundle")
	writeFiles(t, dir, policyFiles("r1"))
	m, logs := startPollingManager(t, dir, 10*time.Millisecond)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missing directory recorded", func() bool { return lastErrorIsNotExist(m) })
	if got := m.Revision(); got != "r1" {
		t.Errorf("revision while the directory is missing = %q, want r1", got)
	}

	// Several polls find the directory still missing, and each logs only at
	// debug level.
	waitFor(t, "three polls of the missing directory", func() bool {
		return countLines(logs.String(), "level=DEBUG", "bundle directory still missing") >= 3
	})
	if n := countLines(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("warnings while the directory is missing = %d, want 1:\n%s", n, logs)
	}
	if n := countLines(logs.String(), "level=WARN", "not found", dir); n != 1 {
		t.Errorf("warnings naming the missing directory = %d, want 1:\n%s", n, logs)
	}

	writeFiles(t, dir, policyFiles("r2"))
	waitFor(t, "revision r2 from the created directory", func() bool { return m.Revision() == "r2" })
	if _, err := m.LastActivation(); err != nil {
		t.Errorf("LastActivation error after the directory came back = %v, want nil", err)
	}

	// The watches are armed again: a change in the created directory, and
	// one in a subdirectory created after it, are both loaded.
	writeFiles(t, dir, policyFiles("r3"))
	waitFor(t, "revision r3", func() bool { return m.Revision() == "r3" })
	writeFiles(t, dir, map[string]string{"pdp/extra/x.rego": "package pdp.extra\nx := 1\n"})
	waitFor(t, "new subdirectory loaded", func() bool {
		v, ok, _ := m.Active().Query(context.Background(), "pdp/extra/x", nil)
		return ok && v == json.Number("1")
	})
	writeFiles(t, dir, map[string]string{"pdp/extra/x.rego": "package pdp.extra\nx := 2\n"})
	waitFor(t, "change in new subdirectory", func() bool {
		v, _, _ := m.Active().Query(context.Background(), "pdp/extra/x", nil)
		return v == json.Number("2")
	})
}

func TestWatchDirectoryReplacedQuickly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bundle")
	writeFiles(t, dir, policyFiles("q1"))
	// An hour-long poll leaves only the parent directory's watch to notice
	// the new directory.
	m, _ := startPollingManager(t, dir, time.Hour)

	// Removed and created again within one debounce interval, so the
	// watcher may never see the path missing.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, policyFiles("q2"))
	waitFor(t, "revision q2", func() bool { return m.Revision() == "q2" })

	writeFiles(t, dir, policyFiles("q3"))
	waitFor(t, "revision q3 from the new directory's watch", func() bool { return m.Revision() == "q3" })
}

func TestWatchDirectoryFoundByPoll(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "parent")
	dir := filepath.Join(parent, "bundle")
	writeFiles(t, dir, policyFiles("p1"))
	m, _ := startPollingManager(t, dir, 10*time.Millisecond)

	// Removing the parent directory too ends its watch, so only the poll
	// can find the bundle directory again.
	if err := os.RemoveAll(parent); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missing directory recorded", func() bool { return lastErrorIsNotExist(m) })
	writeFiles(t, dir, policyFiles("p2"))
	waitFor(t, "revision p2", func() bool { return m.Revision() == "p2" })

	writeFiles(t, dir, policyFiles("p3"))
	waitFor(t, "revision p3", func() bool { return m.Revision() == "p3" })
}

// symlinkTarget writes files into a new directory named name below base
// and returns that directory.
func symlinkTarget(t *testing.T, base, name string, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(base, name)
	writeFiles(t, dir, files)
	return dir
}

// swapSymlink points link at target in one rename, as a Kubernetes volume
// update does.
func swapSymlink(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".new"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

func TestSymlinkedPathLoads(t *testing.T) {
	base := t.TempDir()
	v1 := symlinkTarget(t, base, "v1", policyFiles("s1"))
	v2 := symlinkTarget(t, base, "v2", policyFiles("s2"))
	link := filepath.Join(base, "current")
	if err := os.Symlink(v1, link); err != nil {
		t.Fatal(err)
	}

	m, _ := newTestManager(t, Config{Path: link, Watch: noWatch})
	if got := m.Revision(); got != "s1" {
		t.Fatalf("revision = %q, want s1", got)
	}

	swapSymlink(t, v2, link)
	if err := m.Reload(context.Background()); err != nil {
		t.Fatalf("Reload after the symlink swap: %v", err)
	}
	if got := m.Revision(); got != "s2" {
		t.Errorf("revision after the symlink swap = %q, want s2", got)
	}
}

func TestWatchFollowsSymlinkSwap(t *testing.T) {
	base := t.TempDir()
	v1 := symlinkTarget(t, base, "v1", policyFiles("k1"))
	link := filepath.Join(base, "current")
	if err := os.Symlink(v1, link); err != nil {
		t.Fatal(err)
	}
	m, _ := newTestManager(t, Config{Path: link})

	// A write below the symlink target is seen through the resolved
	// directory's watch.
	writeFiles(t, v1, policyFiles("k2"))
	waitFor(t, "revision k2", func() bool { return m.Revision() == "k2" })

	v2 := symlinkTarget(t, base, "v2", policyFiles("k3"))
	swapSymlink(t, v2, link)
	waitFor(t, "revision k3 after the symlink swap", func() bool { return m.Revision() == "k3" })

	// The new target is watched after the swap.
	writeFiles(t, v2, policyFiles("k4"))
	waitFor(t, "revision k4", func() bool { return m.Revision() == "k4" })
}

func TestStartMissingPath(t *testing.T) {
	base := t.TempDir()
	dangling := filepath.Join(base, "dangling")
	if err := os.Symlink(filepath.Join(base, "gone"), dangling); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{name: "missing directory", path: filepath.Join(base, "absent")},
		{name: "dangling symlink", path: dangling},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := startTestManager(t, Config{Path: tc.path, Watch: noWatch})
			if err == nil {
				t.Fatal("Start returned nil for a missing bundle path")
			}
			if !strings.Contains(err.Error(), tc.path+" not found") {
				t.Errorf("error %q does not say %s was not found", err, tc.path)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %q does not wrap fs.ErrNotExist", err)
			}
		})
	}
}
