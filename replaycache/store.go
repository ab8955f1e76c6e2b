package replaycache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authgate/pdp/pdp"
)

// Store is a pdp.ReplayStore with a lifecycle.
//
// Check returns nil for a fresh message. Otherwise it returns a
// *pdp.ReasonError with one of these codes:
//   - replay.nonce_reused: the message id was seen inside the window.
//   - replay.sequence_regressed: the sequence number is a duplicate, is
//     below the sliding window, or jumps more than max_sequence_jump ahead.
//   - message.stale: the timestamp is outside the window.
//   - message.invalid: the id is empty or the sequence is above MaxSequence.
//   - state.unavailable, wrapping ErrStateLost: the lost-state guard holds.
//
// Any other error means the state could not be read or written, and the
// engine denies with state.unavailable. A denied check records nothing.
//
// Finding the recovery moment T0: the memory store takes its start time,
// and raises its guard whenever the entry bound evicts a nonce or a sequence
// stream that is still live. The Redis store keeps a marker hash per sender,
// in the sender's Cluster hash slot, holding T0 and a write counter that
// the Lua script increments on every check. A missing marker (restart
// without persistence, first use) makes the script set T0 to now. A marker
// whose T0 or counter is lower than one this process saw before a check
// began means Redis rolled back (failover to a replica that missed writes),
// and the store resets T0 to now.
type Store interface {
	pdp.ReplayStore
	// Ready returns nil when the store can run checks. The Redis store
	// sends a PING.
	Ready(ctx context.Context) error
	// Close releases the store's resources. It is safe to call twice.
	Close() error
}

// Options wires a store with what the configuration cannot hold.
type Options struct {
	// Client is a Redis client to use instead of one built from
	// Config.Redis, so several packages can share one connection pool. The
	// store does not close a client it was given.
	Client redis.UniversalClient
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// OnRedis, when not nil, receives each Redis round trip of the Redis
	// store: the operation (OpCheck or OpPing), its latency and its error,
	// nil on success. The memory store never calls it. It runs on the
	// caller's goroutine before Check or Ready returns, so it must be quick.
	OnRedis func(op string, d time.Duration, err error)
}

// Operation names passed to Options.OnRedis.
const (
	// OpCheck is one run of the replay check script, also the second run
	// that resets the recovery moment after a rollback. A run that falls
	// back from EVALSHA to EVAL, because Redis had not cached the script,
	// is reported once with the time of both commands.
	OpCheck = "replay_check"
	// OpPing is the PING sent by Ready.
	OpPing = "replay_ping"
)

// ErrStateLost is wrapped by the state.unavailable denial for a message
// timestamped before the lost-state guard ends.
var ErrStateLost = errors.New("replay state was lost; messages timestamped before the recovery guard are denied")

// New validates cfg and returns the store it selects. The Redis store does
// not connect until its first call; use Ready to check the connection.
func New(cfg Config, opts Options) (Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("replay store config: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if cfg.Backend == BackendRedis {
		return newRedisStore(cfg, opts)
	}
	return newMemoryStore(cfg, opts)
}

// precheck applies the checks both backends share and that need no state.
func precheck(c pdp.ReplayCheck, w Window, now time.Time) error {
	if c.Sender == "" {
		return errors.New("replay check has no sender")
	}
	if c.Nonce == "" {
		return pdp.Deny(pdp.ReasonMessageInvalid, errors.New("message has no id"))
	}
	if c.HasSequence && c.Sequence > MaxSequence {
		return pdp.Denyf(pdp.ReasonMessageInvalid, "sequence number %d is above the maximum %d", c.Sequence, uint64(MaxSequence))
	}
	oldest := now.Add(-w.Past - w.ClockSkew)
	newest := now.Add(w.Future + w.ClockSkew)
	if !c.Timestamp.After(oldest) || !c.Timestamp.Before(newest) {
		return pdp.Denyf(pdp.ReasonMessageStale, "timestamp %d is outside the window (%d, %d)",
			c.Timestamp.Unix(), oldest.Unix(), newest.Unix())
	}
	return nil
}

// seqVerdict is the outcome of a sequence check.
type seqVerdict int

const (
	seqFresh seqVerdict = iota
	seqDuplicate
	seqTooOld
	seqTooFar
)

func (v seqVerdict) err(c pdp.ReplayCheck) error {
	switch v {
	case seqDuplicate:
		return pdp.Denyf(pdp.ReasonSequenceRegressed, "sequence %d of sender %q channel %q was already used", c.Sequence, c.Sender, c.Channel)
	case seqTooOld:
		return pdp.Denyf(pdp.ReasonSequenceRegressed, "sequence %d of sender %q channel %q is below the window", c.Sequence, c.Sender, c.Channel)
	case seqTooFar:
		return pdp.Denyf(pdp.ReasonSequenceRegressed, "sequence %d of sender %q channel %q jumps too far ahead", c.Sequence, c.Sender, c.Channel)
	}
	return nil
}

func nonceReused(c pdp.ReplayCheck) error {
	return pdp.Denyf(pdp.ReasonNonceReused, "message id %q of sender %q was already used", c.Nonce, c.Sender)
}

func stateLost(t0 time.Time) error {
	return pdp.Deny(pdp.ReasonStateUnavailable, fmt.Errorf("%w (recovery moment %s)", ErrStateLost, t0.UTC().Format(time.RFC3339)))
}
