package bundles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Timing of the watch on a bundle directory that has gone missing.
const (
	// missingPollInterval is how often the watcher checks whether a missing
	// bundle directory exists again. The watch on the parent directory
	// usually notices sooner. The poll covers a parent directory that could
	// not be watched or was itself removed.
	missingPollInterval = time.Second
	// missingLogInterval is the minimum time between two warnings that the
	// bundle directory is still missing.
	missingLogInterval = 5 * time.Minute
)

// startWatch starts a goroutine that reloads the Path source when its
// files change. A directory bundle is watched with all its subdirectories.
// A .tar.gz file is watched through its parent directory, because editors
// and deploy tools replace files by renaming a new one over them, which
// ends a watch on the file itself.
func (m *Manager) startWatch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch bundle %s: %w", m.cfg.Path, err)
	}
	target, err := filepath.Abs(m.cfg.Path)
	if err != nil {
		w.Close()
		return fmt.Errorf("watch bundle %s: %w", m.cfg.Path, err)
	}

	if m.kind == sourceTarball {
		if err := w.Add(filepath.Dir(target)); err != nil {
			w.Close()
			return fmt.Errorf("watch bundle %s: %w", m.cfg.Path, err)
		}
		match := func(ev fsnotify.Event) bool { return filepath.Clean(ev.Name) == target }
		m.runWatch(func() { m.watchTarball(ctx, w, match) }, w)
		m.log.Info("bundle watch started", "source", m.kind, "path", m.cfg.Path)
		return nil
	}

	dw := &dirWatch{w: w, path: target, pollInterval: m.missingPoll}
	root, err := resolveDirectory(target)
	if err != nil {
		w.Close()
		return fmt.Errorf("watch bundle %s: %w", m.cfg.Path, err)
	}
	if err := dw.arm(root); err != nil {
		w.Close()
		return fmt.Errorf("watch bundle %s: %w", m.cfg.Path, err)
	}
	if err := dw.watchParent(); err != nil {
		m.log.Warn("bundle watch failed to watch the parent directory", "path", m.cfg.Path,
			"directory", filepath.Dir(target), "error", err)
	}
	m.runWatch(func() { m.watchDirectory(ctx, dw) }, w)
	m.log.Info("bundle watch started", "source", m.kind, "path", m.cfg.Path, "directory", root)
	return nil
}

// runWatch runs loop on a goroutine that Stop waits for and closes w when
// loop returns.
func (m *Manager) runWatch(loop func(), w *fsnotify.Watcher) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer w.Close()
		loop()
	}()
}

// watchTarball reloads once no matching event has arrived for
// DefaultWatchDebounce, so a burst of writes causes one reload.
func (m *Manager) watchTarball(ctx context.Context, w *fsnotify.Watcher, match func(fsnotify.Event) bool) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if match(ev) {
				timer.Reset(DefaultWatchDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			m.log.Warn("bundle watch error", "path", m.cfg.Path, "error", err)
		case <-timer.C:
			// loadLocal logs a rejection itself.
			_ = m.loadLocal(ctx)
		}
	}
}

// watchDirectory reloads a directory bundle once no relevant event has
// arrived for DefaultWatchDebounce. While the directory is missing it polls
// for it every dirWatch.pollInterval, and the last good revision keeps
// serving.
func (m *Manager) watchDirectory(ctx context.Context, dw *dirWatch) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var poll *time.Ticker
	var pollC <-chan time.Time
	defer func() {
		if poll != nil {
			poll.Stop()
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-dw.w.Events:
			if !ok {
				return
			}
			if dw.relevant(ev) {
				m.noteEvent(dw, ev)
				timer.Reset(DefaultWatchDebounce)
			}
		case err, ok := <-dw.w.Errors:
			if !ok {
				return
			}
			m.log.Warn("bundle watch error", "path", m.cfg.Path, "error", err)
		case <-timer.C:
			m.refreshDirectory(ctx, dw)
		case <-pollC:
			m.refreshDirectory(ctx, dw)
		}

		// Poll only while the directory is missing.
		switch {
		case dw.missing() && poll == nil:
			poll = time.NewTicker(dw.pollInterval)
			pollC = poll.C
		case !dw.missing() && poll != nil:
			poll.Stop()
			poll, pollC = nil, nil
		}
	}
}

// noteEvent marks the watches stale when the bundle directory itself was
// removed, renamed or created, and watches a subdirectory created below
// it.
func (m *Manager) noteEvent(dw *dirWatch, ev fsnotify.Event) {
	if ev.Name == dw.path || ev.Name == dw.root {
		if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			dw.stale = true
		}
		return
	}
	if !ev.Has(fsnotify.Create) {
		return
	}
	// A new or renamed-in subdirectory needs its own watch. Files written
	// into it before the watch exists are read by the reload this event
	// schedules.
	info, err := os.Stat(ev.Name)
	if err != nil || !info.IsDir() {
		return
	}
	if err := addTree(dw.w, ev.Name); err != nil {
		m.log.Warn("bundle watch failed to add a directory", "path", ev.Name, "error", err)
	}
}

// refreshDirectory renews the watches when the bundle directory was
// replaced, then reloads it. A missing directory is reported once, and
// again at most every missingLogInterval.
func (m *Manager) refreshDirectory(ctx context.Context, dw *dirWatch) {
	root, err := resolveDirectory(dw.path)
	if errors.Is(err, fs.ErrNotExist) {
		m.reportMissing(ctx, dw)
		return
	}

	if !dw.missingSince.IsZero() {
		m.log.Info("bundle path exists again", "path", m.cfg.Path,
			"missing_for", time.Since(dw.missingSince).Round(time.Millisecond))
		dw.missingSince = time.Time{}
	}
	if err == nil {
		m.rearm(dw, root)
	}
	// loadLocal logs a rejection itself, such as a path that is no longer
	// a directory.
	_ = m.loadLocal(ctx)
}

// rearm watches root when it is not watched yet, and the parent of the
// bundle path in case that directory was replaced too. A failure is logged
// because the next reload still reads the files.
func (m *Manager) rearm(dw *dirWatch, root string) {
	if err := dw.arm(root); err != nil {
		m.log.Warn("bundle watch failed to watch the directory", "path", m.cfg.Path,
			"directory", root, "error", err)
	}
	if err := dw.watchParent(); err != nil {
		m.log.Warn("bundle watch failed to watch the parent directory", "path", m.cfg.Path,
			"directory", filepath.Dir(dw.path), "error", err)
	}
}

// reportMissing records a missing bundle directory. The first call loads
// once, so LastActivation and Options.OnActivate carry the error and the
// rejection is logged. Later calls log a warning at most every
// missingLogInterval.
func (m *Manager) reportMissing(ctx context.Context, dw *dirWatch) {
	dw.forget()
	now := time.Now()
	if dw.missingSince.IsZero() {
		dw.missingSince, dw.lastMissingLog = now, now
		_ = m.loadLocal(ctx)
		return
	}
	missingFor := now.Sub(dw.missingSince).Round(time.Second)
	if now.Sub(dw.lastMissingLog) < missingLogInterval {
		m.log.Debug("bundle directory still missing", "path", m.cfg.Path, "missing_for", missingFor)
		return
	}
	dw.lastMissingLog = now
	m.log.Warn("bundle directory still missing, the last good revision keeps serving",
		"path", m.cfg.Path, "missing_for", missingFor, "bundle_revision", m.Revision())
}

// dirWatch is the state of the fsnotify watches of a directory bundle:
// the directory that path resolves to with all its subdirectories, and the
// parent of path, which reports path removed, created again or, for a
// symlink, replaced. It is used only by the watch goroutine.
type dirWatch struct {
	w *fsnotify.Watcher
	// path is the absolute bundle path, with symlinks not resolved.
	path string
	// root is the resolved directory whose tree is watched, "" while the
	// directory is missing.
	root string
	// stale means root was removed, renamed or created again, so its
	// watches must be renewed even when the resolved name is unchanged.
	stale bool
	// pollInterval is the wait between two checks for a missing directory.
	pollInterval time.Duration
	// missingSince is when the directory was first found missing, zero
	// while it exists.
	missingSince   time.Time
	lastMissingLog time.Time
}

// missing reports whether the bundle directory was missing at the last
// check.
func (dw *dirWatch) missing() bool { return !dw.missingSince.IsZero() }

// relevant reports whether ev concerns the bundle: path itself, or a file
// or directory below the watched root. The parent directory's watch also
// reports siblings of path, which are ignored.
func (dw *dirWatch) relevant(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	return name == dw.path || (dw.root != "" && within(name, dw.root))
}

// arm watches root and every directory below it, after removing the
// watches of the previous root. It does nothing when root is already
// watched and not stale.
func (dw *dirWatch) arm(root string) error {
	if root == dw.root && !dw.stale {
		return nil
	}
	dw.forget()
	dw.root, dw.stale = root, false
	return addTree(dw.w, root)
}

// forget removes the watches below the current root, which a symlink swap
// leaves on the old directory, and clears root.
func (dw *dirWatch) forget() {
	if dw.root != "" {
		parent := filepath.Dir(dw.path)
		for _, p := range dw.w.WatchList() {
			if p != parent && within(p, dw.root) {
				// The kernel drops the watch of a removed directory on its
				// own, so a failure here only means it is gone already.
				_ = dw.w.Remove(p)
			}
		}
	}
	dw.root = ""
}

// watchParent watches the parent directory of path. Adding a watch that
// exists already is harmless, so it runs again after each re-arm in case
// the parent directory itself was replaced.
//
// NOTE: without this watch a symlink swap at path goes unnoticed until a
// file below the old target changes, and a removed directory is found
// again only by the poll.
func (dw *dirWatch) watchParent() error {
	return dw.w.Add(filepath.Dir(dw.path))
}

// within reports whether name is dir or below it. Both are clean
// absolute paths.
func within(name, dir string) bool {
	if name == dir {
		return true
	}
	prefix := dir
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	return strings.HasPrefix(name, prefix)
}

// addTree watches dir and every directory below it.
func addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		return w.Add(path)
	})
}
