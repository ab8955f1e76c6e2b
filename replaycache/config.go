// Package replaycache stores nonce and sequence state for replay checks: in
// memory for one instance, or in Redis (single, Sentinel, Cluster) for
// several replicas.
//
// A Store runs pdp.ReplayStore.Check in one atomic step: the message id
// (nonce) must not have been seen inside the acceptance window, and when the
// message carries a sequence number, that number must be new for its sender
// and channel. The Redis store does both in one Lua script, so one decision
// costs one round trip.
//
// # Lost state
//
// A store that forgets nonces (Redis restarted without persistence, a
// failover to a replica that missed writes, an in-memory store that was
// restarted or had to evict live entries) could accept a replay of a message
// it accepted before. Each store therefore keeps a recovery moment T0 and,
// with the default guard (window), denies with state.unavailable every
// message timestamped before T0 + window.future + window.clock_skew. A
// message accepted before T0 had a timestamp below that bound, even one
// stamped ahead of the PDP's clock, so none can be replayed. The guard ends
// by itself once every message it could deny is stale.
//
// The cost is that for up to window.future after a loss, or after a store
// is first used or restarted, fresh messages are denied too (HTTP 503,
// which webhook senders retry). lost_state_guard: recovery_moment denies
// only messages timestamped before T0: traffic passes at once, but a message
// stamped ahead of the PDP's clock and accepted shortly before the loss can
// be replayed once. See Store for how each backend finds T0.
package replaycache

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Backends.
const (
	BackendMemory = "memory"
	BackendRedis  = "redis"
)

// Lost-state guards: how far the denial after lost state reaches.
const (
	// GuardWindow denies messages timestamped before T0 + window.future +
	// window.clock_skew, so no message accepted before the loss can pass.
	GuardWindow = "window"
	// GuardRecoveryMoment denies only messages timestamped before T0. New
	// traffic passes at once, but a message stamped ahead of the PDP's clock
	// and accepted shortly before the loss can be replayed once.
	GuardRecoveryMoment = "recovery_moment"
)

// Defaults applied by Validate to fields left at their zero value.
const (
	DefaultBackend         = BackendMemory
	DefaultLostStateGuard  = GuardWindow
	DefaultPastTolerance   = 5 * time.Minute
	DefaultFutureTolerance = 5 * time.Minute
	DefaultMaxEntries      = 1_000_000
	DefaultMaxStreams      = 100_000
	DefaultSequenceWindow  = 64
	DefaultMaxSequenceJump = 1000
	DefaultSequenceTTL     = 24 * time.Hour
	DefaultDialTimeout     = 2 * time.Second
	DefaultOpTimeout       = 50 * time.Millisecond
	DefaultKeyPrefix       = "pdp:replay:"
)

// Limits checked by Validate.
const (
	// MaxSequenceWindow bounds sequence_window, because the Redis script
	// clears up to that many bitmap bits in one step.
	MaxSequenceWindow = 4096
	// MaxSequence is the largest sequence number a store accepts: 2^53-1,
	// the largest integer that JSON numbers and Redis Lua numbers (IEEE 754
	// doubles) carry exactly.
	MaxSequence = 1<<53 - 1
)

// Config selects and tunes the replay store. The YAML keys are the
// snake_case names in the struct tags.
type Config struct {
	// Backend is "memory" (one instance, the default) or "redis" (shared by
	// every replica).
	Backend string `yaml:"backend"`
	// Window is the message acceptance window. It must equal the message
	// verifier's window: the store denies as stale every message outside
	// it, and keeps each nonce for the whole window.
	Window Window `yaml:"window"`
	// LostStateGuard is "window" (the default) or "recovery_moment"; see
	// GuardWindow and GuardRecoveryMoment and the package documentation.
	LostStateGuard string `yaml:"lost_state_guard"`
	// SequenceWindow is how many sequence numbers below the highest one seen
	// are still accepted once, out of order (like IPsec anti-replay).
	// Default 64, at most 4096.
	SequenceWindow int `yaml:"sequence_window"`
	// MaxSequenceJump is the largest step, above the highest sequence number
	// seen, that one message may make. A larger jump is denied with
	// replay.sequence_regressed, so one buggy message cannot push the high
	// mark so far that the sender's next messages all fall out of window.
	// Default 1000.
	MaxSequenceJump uint64 `yaml:"max_sequence_jump"`
	// SequenceTTL is how long the sequence state of an idle sender channel
	// is kept. Default 24h; it may not be shorter than the window.
	SequenceTTL time.Duration `yaml:"sequence_ttl"`

	Memory MemoryConfig `yaml:"memory"`
	Redis  RedisConfig  `yaml:"redis"`
}

// Window is the range of message timestamps accepted around the PDP's
// clock: a message is accepted when now-past-clock_skew < timestamp <
// now+future+clock_skew, both bounds excluded.
type Window struct {
	// Past is the maximum age of a message. Default 5m, as in Standard Webhooks.
	Past time.Duration `yaml:"past"`
	// Future is the maximum time a message may be stamped ahead of the PDP's
	// clock.
	// Default 5m.
	Future time.Duration `yaml:"future"`
	// ClockSkew widens both sides, and every state lifetime, by the
	// largest expected difference between replica clocks. Default 0.
	ClockSkew time.Duration `yaml:"clock_skew"`
}

// MemoryConfig tunes the in-memory store.
type MemoryConfig struct {
	// MaxEntries bounds the nonces kept. When the bound evicts a nonce
	// that is still inside the window, messages timestamped at or before
	// that nonce's message are denied with state.unavailable from then on,
	// until they turn stale. Default 1,000,000 (roughly 100 bytes each).
	MaxEntries int `yaml:"max_entries"`
	// MaxStreams bounds the sender channels whose sequence state is kept,
	// evicting the least recently used. Default 100,000.
	MaxStreams int `yaml:"max_streams"`
}

// ttl returns how long a nonce must be kept so that no message carrying it
// can still be accepted when it expires: a message may be accepted up to
// future+skew before its timestamp and up to past+skew after it. One second
// is added because timestamps have whole-second precision.
func (w Window) ttl() time.Duration {
	return w.Past + w.Future + 2*w.ClockSkew + time.Second
}

// guard returns how far past the recovery moment T0 the timestamps of
// denied messages reach after lost state.
func (c *Config) guard() time.Duration {
	if c.LostStateGuard == GuardRecoveryMoment {
		return 0
	}
	return c.Window.Future + c.Window.ClockSkew
}

// setDefaults fills zero fields with the Default* constants.
func (c *Config) setDefaults() {
	if c.Backend == "" {
		c.Backend = DefaultBackend
	}
	if c.LostStateGuard == "" {
		c.LostStateGuard = DefaultLostStateGuard
	}
	if c.Window.Past == 0 {
		c.Window.Past = DefaultPastTolerance
	}
	if c.Window.Future == 0 {
		c.Window.Future = DefaultFutureTolerance
	}
	if c.SequenceWindow == 0 {
		c.SequenceWindow = DefaultSequenceWindow
	}
	if c.MaxSequenceJump == 0 {
		c.MaxSequenceJump = DefaultMaxSequenceJump
	}
	if c.SequenceTTL == 0 {
		c.SequenceTTL = DefaultSequenceTTL
	}
	if c.Memory.MaxEntries == 0 {
		c.Memory.MaxEntries = DefaultMaxEntries
	}
	if c.Memory.MaxStreams == 0 {
		c.Memory.MaxStreams = DefaultMaxStreams
	}
	if c.Redis.KeyPrefix == "" {
		c.Redis.KeyPrefix = DefaultKeyPrefix
	}
	c.Redis.setDefaults()
}

// Validate fills defaults and reports every problem in the configuration at
// once, each prefixed with its key.
func (c *Config) Validate() error {
	c.setDefaults()
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	switch c.Backend {
	case BackendMemory, BackendRedis:
	default:
		add("backend", "must be %q or %q, got %q", BackendMemory, BackendRedis, c.Backend)
	}
	switch c.LostStateGuard {
	case GuardWindow, GuardRecoveryMoment:
	default:
		add("lost_state_guard", "must be %q or %q, got %q", GuardWindow, GuardRecoveryMoment, c.LostStateGuard)
	}
	if c.Window.Past < time.Second {
		add("window.past", "must be at least 1s, got %s", c.Window.Past)
	}
	if c.Window.Future < time.Second {
		add("window.future", "must be at least 1s, got %s", c.Window.Future)
	}
	if c.Window.ClockSkew < 0 {
		add("window.clock_skew", "must not be negative, got %s", c.Window.ClockSkew)
	}
	if c.SequenceWindow < 1 || c.SequenceWindow > MaxSequenceWindow {
		add("sequence_window", "must be between 1 and %d, got %d", MaxSequenceWindow, c.SequenceWindow)
	}
	if c.SequenceTTL < c.Window.ttl() {
		add("sequence_ttl", "must be at least the window (%s), got %s", c.Window.ttl(), c.SequenceTTL)
	}
	if c.Memory.MaxEntries < 1 {
		add("memory.max_entries", "must be positive, got %d", c.Memory.MaxEntries)
	}
	if c.Memory.MaxStreams < 1 {
		add("memory.max_streams", "must be positive, got %d", c.Memory.MaxStreams)
	}
	if strings.ContainsAny(c.Redis.KeyPrefix, "{}") {
		add("redis.key_prefix", "must not contain { or }, because they mark Redis Cluster hash tags; got %q", c.Redis.KeyPrefix)
	}
	if c.Backend == BackendRedis {
		errs = append(errs, c.Redis.validate("redis"))
	}
	return errors.Join(errs...)
}
