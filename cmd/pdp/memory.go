package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/authgate/pdp/config"
)

// autoLimitRatio is the share of the cgroup memory limit that memory.limit
// auto takes as the soft limit, leaving room for memory the Go runtime
// does not count (thread stacks, the binary).
const autoLimitRatio = 0.9

// applyMemory sets the garbage collector from cfg. GOGC and GOMEMLIMIT in
// the environment win over the configuration, so an operator can always
// fall back to Go's own settings.
func applyMemory(cfg config.MemoryConfig, log *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		switch cfg.Limit {
		case config.MemoryLimitOff:
		case config.MemoryLimitAuto:
			// Without a cgroup limit this leaves the limit unset.
			if _, err := memlimit.Set(memlimit.WithRatio(autoLimitRatio),
				memlimit.WithProvider(memlimit.FromCgroup)); err != nil {
				log.Debug("no cgroup memory limit found", "error", err)
			}
		default:
			// Validate has checked the size.
			limit, _ := cfg.LimitBytes()
			debug.SetMemoryLimit(limit)
		}
	}
	limit := debug.SetMemoryLimit(-1)
	gcPercent := debug.SetGCPercent(-1)
	debug.SetGCPercent(gcPercent)
	log.Info("garbage collector set", "gc_percent", gcPercent, "memory_limit_bytes", limit)
}
