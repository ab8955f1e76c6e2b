package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Defaults of the memory section.
const (
	// DefaultGCPercent lets the heap grow to five times the live heap
	// between collections. A decision allocates tens of kilobytes over a
	// live heap of a few megabytes, so Go's default of 100 collects
	// thousands of times per second under load.
	DefaultGCPercent = 400
	// MemoryLimitAuto takes 90% of the cgroup memory limit as the soft
	// memory limit when the process runs under one, and otherwise three
	// times the live heap after the last bundle activation, at least
	// 64 MiB.
	MemoryLimitAuto = "auto"
	// MemoryLimitOff sets no soft memory limit.
	MemoryLimitOff = "off"
	// MinMemoryLimit is the smallest fixed memory.limit. Below it the
	// collector would run almost continuously.
	MinMemoryLimit = 16 << 20
)

// MemoryConfig tunes Go's garbage collector. The environment variables
// GOGC and GOMEMLIMIT, when set, take precedence over both settings.
type MemoryConfig struct {
	// GCPercent is the collector's GOGC value; default 400. -1 turns the
	// collector off except at the memory limit.
	GCPercent int `yaml:"gc_percent"`
	// Limit is the soft memory limit (GOMEMLIMIT): auto (the default),
	// off, or a size in bytes with an optional KiB, MiB or GiB suffix.
	// Near the limit the collector runs more often, so a high GCPercent
	// does not push the heap past it.
	Limit string `yaml:"limit"`
}

// LimitBytes returns the configured fixed limit, or 0 for auto and off.
func (m MemoryConfig) LimitBytes() (int64, error) {
	switch m.Limit {
	case MemoryLimitAuto, MemoryLimitOff:
		return 0, nil
	}
	return parseSize(m.Limit)
}

// Validate reports an unusable setting.
func (m MemoryConfig) Validate() error {
	var errs []error
	if m.GCPercent < -1 {
		errs = append(errs, fmt.Errorf("gc_percent: must be -1 or more, got %d", m.GCPercent))
	}
	if limit, err := m.LimitBytes(); err != nil {
		errs = append(errs, fmt.Errorf("limit: %w", err))
	} else if limit > 0 && limit < MinMemoryLimit {
		errs = append(errs, fmt.Errorf("limit: %d bytes is below the minimum of 16MiB", limit))
	}
	return errors.Join(errs...)
}

// parseSize reads "123", "64KiB", "96MiB" or "2GiB" as a positive number
// of bytes.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}}
	number, shift := s, uint(0)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			number, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(number), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is not auto, off or a positive size such as 256MiB", s)
	}
	return n << shift, nil
}
