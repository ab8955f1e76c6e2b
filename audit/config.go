// Package audit writes one hash-chained, tamper-evident record per decision
// and verifies such chains.
package audit

import (
	"context"
	"log/slog"

	"github.com/authgate/pdp/pdp"
)

// Config selects the audit sinks and their durability.
type Config struct{}

// Validate reports every problem in the configuration.
func (c *Config) Validate() error { return nil }

// Options are the non-configuration inputs of a Log.
type Options struct {
	Instance string
	Logger   *slog.Logger
}

// Log is the audit writer.
type Log struct{}

// Open validates cfg, recovers the chain head and returns a Log.
func Open(cfg Config, opts Options) (*Log, error) { return &Log{}, nil }

// Record appends ev and returns once it is durable.
func (l *Log) Record(ctx context.Context, ev *pdp.AuditEvent) error { return nil }

// Close flushes and closes the sinks.
func (l *Log) Close() error { return nil }
