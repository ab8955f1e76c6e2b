package main

import (
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/authgate/pdp/config"
)

const (
	// autoLimitRatio is the share of the cgroup memory limit that
	// memory.limit auto takes as the soft limit, leaving room for memory
	// the Go runtime does not count (thread stacks, the binary).
	autoLimitRatio = 0.9
	// followFloor and followFactor set memory.limit auto without a cgroup
	// limit: three times the live heap after the last bundle activation,
	// and at least 64 MiB. The collector then keeps the heap near the
	// limit instead of at five times the live heap (GOGC 400), while a
	// bundle that needs more memory raises the limit with it.
	followFloor  = 64 << 20
	followFactor = 3
)

// memoryTuner applies the memory section and, when the limit follows the
// live heap, resets it after each bundle activation.
type memoryTuner struct {
	log    *slog.Logger
	follow bool
}

// newMemoryTuner sets the garbage collector from cfg. GOGC and GOMEMLIMIT
// in the environment win over the configuration, so an operator can always
// fall back to Go's own settings.
func newMemoryTuner(cfg config.MemoryConfig, log *slog.Logger) *memoryTuner {
	t := &memoryTuner{log: log}
	if v := os.Getenv("GOGC"); v == "" {
		debug.SetGCPercent(cfg.GCPercent)
	} else {
		log.Info("GOGC is set, so memory.gc_percent is not applied", "GOGC", v)
	}
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("GOMEMLIMIT is set, so memory.limit is not applied", "GOMEMLIMIT", v)
	} else {
		switch cfg.Limit {
		case config.MemoryLimitOff:
		case config.MemoryLimitAuto:
			limit, err := memlimit.Set(memlimit.WithRatio(autoLimitRatio),
				memlimit.WithProvider(memlimit.FromCgroup))
			if err != nil || limit <= 0 || limit == noLimit {
				t.follow = true
				debug.SetMemoryLimit(followFloor)
			}
		default:
			// Validate has checked the size.
			limit, _ := cfg.LimitBytes()
			debug.SetMemoryLimit(limit)
		}
	}
	t.report("garbage collector set")
	return t
}

// noLimit is the value debug.SetMemoryLimit reports with no limit set.
const noLimit = math.MaxInt64

// bundleActivated raises or lowers a following limit to the live heap of
// the new revision. It collects once to measure that heap; activations
// are rare, and the collection runs on the activating goroutine.
func (t *memoryTuner) bundleActivated(_ string, err error) {
	if err != nil || !t.follow {
		return
	}
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	live := int64(sample[0].Value.Uint64())
	debug.SetMemoryLimit(max(followFloor, followFactor*live))
	t.report("memory limit follows the live heap", "live_heap_bytes", live)
}

// report logs msg with the collector settings now in effect.
func (t *memoryTuner) report(msg string, attrs ...any) {
	gcPercent, limit := gcSettings()
	attrs = append(attrs, "gc_percent", gcPercent, "memory_limit_bytes", limit)
	t.log.Info(msg, attrs...)
}

// gcSettings returns the collector's GOGC percentage (-1 when the
// collector is off) and its memory limit, read without changing them.
func gcSettings() (gcPercent int, limit int64) {
	samples := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(samples)
	gcPercent = -1
	if p := samples[0].Value.Uint64(); p <= math.MaxInt32 {
		gcPercent = int(p)
	}
	return gcPercent, int64(samples[1].Value.Uint64())
}
