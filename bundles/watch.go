package bundles

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
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

	match := func(fsnotify.Event) bool { return true }
	if m.kind == sourceTarball {
		target, err := filepath.Abs(m.cfg.Path)
		if err != nil {
			w.Close()
			return fmt.Errorf("watch bundle %s: %w", m.cfg.Path, err)
		}
		err = w.Add(filepath.Dir(target))
		match = func(ev fsnotify.Event) bool { return filepath.Clean(ev.Name) == target }
		if err != nil {
			w.Close()
			return fmt.Errorf("watch bundle %s: %w", m.cfg.Path, err)
		}
	} else if err := addTree(w, m.cfg.Path); err != nil {
		w.Close()
		return fmt.Errorf("watch bundle %s: %w", m.cfg.Path, err)
	}

	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer w.Close()
		m.watchLoop(ctx, w, match)
	}()
	m.log.Info("bundle watch started", "source", m.kind, "path", m.cfg.Path)
	return nil
}

// watchLoop reloads once no matching event has arrived for
// DefaultWatchDebounce, so a burst of writes causes one reload.
func (m *Manager) watchLoop(ctx context.Context, w *fsnotify.Watcher, match func(fsnotify.Event) bool) {
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
			if !match(ev) {
				continue
			}
			if m.kind == sourceDirectory && ev.Has(fsnotify.Create) {
				// A new or renamed-in subdirectory needs its own watch.
				if info, err := os.Stat(ev.Name); err == nil && info.IsDir() {
					if err := addTree(w, ev.Name); err != nil {
						m.log.Warn("bundle watch failed to add a directory", "path", ev.Name, "error", err)
					}
				}
			}
			timer.Reset(DefaultWatchDebounce)
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
