package main

import (
	"errors"
	"log/slog"
	"runtime/debug"
	"testing"

	"github.com/authgate/pdp/config"
)

// restoreGC puts the collector settings back when the test ends.
func restoreGC(t *testing.T) {
	gcPercent, limit := gcSettings()
	t.Cleanup(func() {
		debug.SetGCPercent(gcPercent)
		debug.SetMemoryLimit(limit)
	})
}

func TestMemoryTunerFixedLimit(t *testing.T) {
	restoreGC(t)
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	tuner := newMemoryTuner(config.MemoryConfig{GCPercent: 250, Limit: "200MiB"}, slog.New(slog.DiscardHandler))
	tuner.bundleActivated("r1", nil)
	if gc, limit := gcSettings(); gc != 250 || limit != 200<<20 {
		t.Errorf("GC percent %d and limit %d, want 250 and %d", gc, limit, 200<<20)
	}
}

func TestMemoryTunerAutoLimit(t *testing.T) {
	restoreGC(t)
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	tuner := newMemoryTuner(config.MemoryConfig{GCPercent: 400, Limit: config.MemoryLimitAuto}, slog.New(slog.DiscardHandler))
	_, limit := gcSettings()
	if !tuner.follow {
		// Under a cgroup memory limit the limit is 90% of it.
		if limit <= 0 || limit == noLimit {
			t.Fatalf("auto limit under a cgroup limit is %d", limit)
		}
		return
	}
	if limit != followFloor {
		t.Fatalf("auto limit without a cgroup limit is %d, want the floor %d", limit, followFloor)
	}
	tuner.bundleActivated("r1", errors.New("rejected"))
	tuner.bundleActivated("r2", nil)
	if _, limit := gcSettings(); limit < followFloor {
		t.Errorf("limit after an activation is %d, want at least %d", limit, followFloor)
	}
}

func TestMemoryTunerEnvironmentWins(t *testing.T) {
	restoreGC(t)
	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "300MiB")
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(300 << 20)
	newMemoryTuner(config.MemoryConfig{GCPercent: 400, Limit: "64MiB"}, slog.New(slog.DiscardHandler))
	if gc, limit := gcSettings(); gc != 150 || limit != 300<<20 {
		t.Errorf("with GOGC and GOMEMLIMIT set: GC percent %d and limit %d, want 150 and %d", gc, limit, 300<<20)
	}
}
