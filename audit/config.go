// Package audit writes one hash-chained, tamper-evident record per decision
// and verifies such chains.
//
// Records are JSON Lines files, one chain per instance. Each record's hash
// is the SHA-256 of the RFC 8785 (JCS) canonical JSON of all its other
// fields, and each record names the hash of the record before it, so an
// edit, deletion or reordering breaks the chain. Signed checkpoints
// (Ed25519) anchor the chain head so that it can be compared with a copy
// kept outside the PDP.
package audit

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Defaults applied to fields left at their zero value.
const (
	// DefaultDir is the audit directory, relative to the working directory.
	DefaultDir = "audit"
	// DefaultBatchMaxRecords is the largest number of records written with
	// one write and one fsync.
	DefaultBatchMaxRecords = 256
	// DefaultRotateSize starts a new file once the current one reaches this
	// many bytes (64 MiB).
	DefaultRotateSize = 64 << 20
	// DefaultRotateInterval starts a new file once the current one is this
	// old.
	DefaultRotateInterval = 24 * time.Hour
	// DefaultCheckpointEvery appends a signed checkpoint after this many
	// records.
	DefaultCheckpointEvery = 1000
	// DefaultCheckpointInterval appends a signed checkpoint this long after
	// the previous one when records were written since.
	DefaultCheckpointInterval = time.Minute
	// DefaultStreamKeyPrefix starts the Redis stream key; the instance id
	// completes it.
	DefaultStreamKeyPrefix = "pdp:audit:"
	// DefaultStreamMaxLen is the approximate number of entries a stream
	// keeps (XADD MAXLEN ~).
	DefaultStreamMaxLen = 1_000_000
	// DefaultStreamQueue is the number of records waiting for Redis before
	// new ones are dropped from the stream (never from the file).
	DefaultStreamQueue = 10_000
)

// Durability sets when Record returns: after the fsync of its own record,
// after the fsync of its batch, or after the write alone.
type Durability string

// Durability levels.
const (
	// DurabilityAlways writes and fsyncs each record on its own.
	DurabilityAlways Durability = "always"
	// DurabilityBatch writes concurrent records with one write and one
	// fsync (group commit). Each Record still returns only after its own
	// record is synced.
	DurabilityBatch Durability = "batch"
	// DurabilityNone writes records without fsync: a crash of the process
	// loses nothing, a crash of the machine may lose recent records.
	DurabilityNone Durability = "none"
)

// Config selects the audit sinks and their durability. Fields left at their
// zero value take the Default* constants. A negative duration or count
// disables the feature where the field documents it.
type Config struct {
	// Dir holds the audit files of this instance's chain. Default DefaultDir.
	Dir string `yaml:"dir"`
	// Durability is always, batch or none. Default batch.
	Durability Durability `yaml:"durability"`
	// BatchMaxWait is how long the first record of a batch may wait for
	// more records before the batch is written, as a duration ("2ms"). Used
	// with durability batch only. Default 0: the writer takes every record
	// that queued during the previous write and fsync, so batches already
	// grow with the fsync time. A wait adds latency and pays off only when
	// fsync is much faster than the gap between records.
	BatchMaxWait time.Duration `yaml:"batch_max_wait"`
	// BatchMaxRecords is the number of queued records that is written
	// without further waiting. Default DefaultBatchMaxRecords.
	BatchMaxRecords int `yaml:"batch_max_records"`
	// RotateSize starts a new file once the current one has this many
	// bytes; negative disables size rotation. Default DefaultRotateSize.
	RotateSize int64 `yaml:"rotate_size"`
	// RotateInterval starts a new file once the current one is this old,
	// checked when a record is written; negative disables time rotation.
	// Default DefaultRotateInterval.
	RotateInterval time.Duration `yaml:"rotate_interval"`
	// CheckpointEvery appends a signed checkpoint after this many records;
	// negative disables count-based checkpoints. Default
	// DefaultCheckpointEvery.
	CheckpointEvery int `yaml:"checkpoint_every"`
	// CheckpointInterval appends a signed checkpoint this long after the
	// previous one if records were written since; negative disables
	// time-based checkpoints. Default DefaultCheckpointInterval.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// CheckpointKeyFile holds the Ed25519 signing key: PEM PKCS#8, or the
	// 32-byte seed as raw bytes or 64 hex digits. Default: DefaultKeyFile(Dir),
	// generated when missing.
	CheckpointKeyFile string `yaml:"checkpoint_key_file"`
	// CheckpointKeyGenerate generates a configured CheckpointKeyFile when
	// it is missing. The default key file is always generated when missing.
	// Default false.
	CheckpointKeyGenerate bool `yaml:"checkpoint_key_generate"`
	// RedisStream copies every record to a Redis stream as well.
	RedisStream StreamConfig `yaml:"redis_stream"`
}

// StreamConfig configures the optional Redis Streams copy of the chain. The
// file is the durable record: the stream is written after the file, and a
// Redis failure never fails or delays Record.
type StreamConfig struct {
	// Enabled turns the stream copy on; it needs Options.Redis. Default false.
	Enabled bool `yaml:"enabled"`
	// KeyPrefix starts the stream key; the instance id completes it, so each
	// replica writes its own chain. Default DefaultStreamKeyPrefix.
	KeyPrefix string `yaml:"key_prefix"`
	// MaxLen trims the stream to about this many entries (XADD MAXLEN ~);
	// negative keeps every entry. Default DefaultStreamMaxLen.
	MaxLen int64 `yaml:"max_len"`
	// Queue is the number of records waiting for Redis before newer ones
	// are dropped from the stream and counted. Default DefaultStreamQueue.
	Queue int `yaml:"queue"`
}

// DefaultKeyFile returns the default checkpoint key path for an audit
// directory: a sibling of the directory, so the key is not shipped with the
// audit files it signs.
func DefaultKeyFile(dir string) string {
	return filepath.Clean(dir) + "-checkpoint.key"
}

// Validate reports every problem in the configuration, each prefixed with
// its key. Zero values are valid: they select the defaults.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	switch c.Durability {
	case "", DurabilityAlways, DurabilityBatch, DurabilityNone:
	default:
		add("durability", "%q is not one of always, batch, none", c.Durability)
	}
	if c.BatchMaxWait < 0 {
		add("batch_max_wait", "must not be negative, got %s", c.BatchMaxWait)
	}
	if c.BatchMaxRecords < 0 {
		add("batch_max_records", "must not be negative, got %d", c.BatchMaxRecords)
	}
	if c.CheckpointKeyGenerate && c.CheckpointKeyFile == "" {
		add("checkpoint_key_generate", "needs checkpoint_key_file")
	}
	if strings.ContainsRune(c.Dir, 0) {
		add("dir", "contains a NUL byte")
	}
	if c.RedisStream.Queue < 0 {
		add("redis_stream.queue", "must not be negative, got %d", c.RedisStream.Queue)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with zero values replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.Durability == "" {
		c.Durability = DurabilityBatch
	}
	if c.BatchMaxRecords == 0 {
		c.BatchMaxRecords = DefaultBatchMaxRecords
	}
	if c.RotateSize == 0 {
		c.RotateSize = DefaultRotateSize
	}
	if c.RotateInterval == 0 {
		c.RotateInterval = DefaultRotateInterval
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = DefaultCheckpointEvery
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.CheckpointKeyFile == "" {
		c.CheckpointKeyFile = DefaultKeyFile(c.Dir)
		c.CheckpointKeyGenerate = true
	}
	if c.RedisStream.KeyPrefix == "" {
		c.RedisStream.KeyPrefix = DefaultStreamKeyPrefix
	}
	if c.RedisStream.MaxLen == 0 {
		c.RedisStream.MaxLen = DefaultStreamMaxLen
	}
	if c.RedisStream.Queue == 0 {
		c.RedisStream.Queue = DefaultStreamQueue
	}
	return c
}

// checkpointsEnabled reports whether any checkpoint trigger is on, which is
// when a signing key is needed.
func (c *Config) checkpointsEnabled() bool {
	return c.CheckpointEvery > 0 || c.CheckpointInterval > 0
}
