package replaycache

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authgate/pdp/pdp"
)

//go:embed check.lua
var checkSource string

var checkScript = redis.NewScript(checkSource)

// redisStore runs every check as one Lua script (see check.lua) on the node
// that owns the sender's hash slot.
type redisStore struct {
	cfg        Config
	client     redis.UniversalClient
	ownsClient bool
	now        func() time.Time
	log        *slog.Logger
	onRedis    func(op string, d time.Duration, err error)

	mu sync.Mutex
	// marks holds, per sender, the newest marker this process has seen.
	marks     map[string]marker
	closeOnce sync.Once
	closeErr  error
}

// marker is one sender's recovery moment and write counter, as returned by
// the script. Markers are ordered by t0, then by w.
type marker struct {
	t0 int64 // Unix milliseconds
	w  int64
}

func (m marker) less(o marker) bool {
	return m.t0 < o.t0 || (m.t0 == o.t0 && m.w < o.w)
}

var _ Store = (*redisStore)(nil)

func newRedisStore(cfg Config, opts Options) (*redisStore, error) {
	s := &redisStore{cfg: cfg, client: opts.Client, now: opts.Now, log: opts.Logger,
		onRedis: opts.OnRedis, marks: map[string]marker{}}
	if s.client == nil {
		client, err := NewClient(cfg.Redis)
		if err != nil {
			return nil, err
		}
		s.client, s.ownsClient = client, true
	}
	return s, nil
}

func (s *redisStore) Check(ctx context.Context, c pdp.ReplayCheck) error {
	now := s.now()
	if err := precheck(c, s.cfg.Window, now); err != nil {
		return err
	}

	// Any counter lower than one seen before this check began means Redis
	// lost writes that this process saw acknowledged.
	s.mu.Lock()
	seen, known := s.marks[c.Sender]
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Redis.OpTimeout)
	defer cancel()
	status, got, err := s.run(ctx, c, now, "")
	if err != nil {
		// TODO: a script that ran after its reply timed out has used the
		// message id, so the sender's retry is denied as a replay. Undoing
		// the attempt needs a compare-and-delete keyed by an attempt token.
		return err
	}
	if known && !seen.less(got) {
		s.log.Warn("replay state in redis rolled back; resetting the recovery moment",
			"sender", c.Sender, "seen_t0", seen.t0, "seen_writes", seen.w, "t0", got.t0, "writes", got.w)
		_, got, err = s.run(ctx, c, now, strconv.FormatInt(got.t0, 10))
		if err != nil {
			return err
		}
		s.remember(c.Sender, got)
		return stateLost(time.UnixMilli(got.t0))
	}
	s.remember(c.Sender, got)

	switch status {
	case "ok":
		return nil
	case "lost":
		return stateLost(time.UnixMilli(got.t0))
	case "nonce":
		return nonceReused(c)
	case "seq_dup":
		return seqDuplicate.err(c)
	case "seq_old":
		return seqTooOld.err(c)
	case "seq_jump":
		return seqTooFar.err(c)
	}
	return fmt.Errorf("replay script returned unknown status %q", status)
}

// remember records m as the sender's newest marker, logging a new
// recovery moment once per change.
func (s *redisStore) remember(sender string, m marker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.marks[sender]
	if ok && !old.less(m) {
		return
	}
	s.marks[sender] = m
	if ok && m.t0 != old.t0 {
		s.log.Warn("replay state in redis was lost; older messages are denied until the guard ends",
			"sender", sender, "t0", time.UnixMilli(m.t0).UTC())
	}
}

// run executes the script once. reset is the T0 to replace, or empty.
func (s *redisStore) run(ctx context.Context, c pdp.ReplayCheck, now time.Time, reset string) (string, marker, error) {
	hasSeq := "0"
	if c.HasSequence {
		hasSeq = "1"
	}
	args := []any{
		now.UnixMilli(),
		c.Timestamp.UnixMilli(),
		s.cfg.guard().Milliseconds(),
		s.cfg.Window.ttl().Milliseconds(),
		reset,
		hasSeq,
		strconv.FormatUint(c.Sequence, 10),
		s.cfg.SequenceWindow,
		strconv.FormatUint(s.cfg.MaxSequenceJump, 10),
		s.cfg.SequenceTTL.Milliseconds(),
	}
	started := time.Now()
	reply, err := checkScript.Run(ctx, s.client, s.keys(c), args...).Slice()
	s.observe(OpCheck, started, err)
	if err != nil {
		return "", marker{}, fmt.Errorf("replay check in redis: %w", err)
	}
	return parseReply(reply)
}

func parseReply(reply []any) (string, marker, error) {
	if len(reply) != 3 {
		return "", marker{}, fmt.Errorf("replay script returned %d values, want 3", len(reply))
	}
	status, ok1 := reply[0].(string)
	t0, ok2 := reply[1].(int64)
	w, ok3 := reply[2].(int64)
	if !ok1 || !ok2 || !ok3 {
		return "", marker{}, fmt.Errorf("replay script returned %T %T %T, want string and two integers",
			reply[0], reply[1], reply[2])
	}
	return status, marker{t0: t0, w: w}, nil
}

// keys returns the script's keys. Every key carries the sender as its
// Redis Cluster hash tag, so all of one sender's state lives in one slot.
func (s *redisStore) keys(c pdp.ReplayCheck) []string {
	base := s.cfg.Redis.KeyPrefix + "{" + escapeKey(c.Sender) + "}:"
	channel := escapeKey(c.Channel)
	return []string{
		base + "epoch",
		base + "n:" + escapeKey(c.Nonce),
		base + "sh:" + channel,
		base + "sb:" + channel,
	}
}

// keyEscaper percent-encodes the characters that delimit key parts and
// hash tags, so distinct senders, channels and nonces never share a key.
var keyEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D", ":", "%3A")

func escapeKey(s string) string { return keyEscaper.Replace(s) }

func (s *redisStore) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Redis.DialTimeout+s.cfg.Redis.OpTimeout)
	defer cancel()
	started := time.Now()
	err := s.client.Ping(ctx).Err()
	s.observe(OpPing, started, err)
	if err != nil {
		return fmt.Errorf("replay store: ping redis: %w", err)
	}
	return nil
}

// observe passes one round trip that began at started to Options.OnRedis.
// The latency uses the monotonic clock, not Options.Now, which tests set.
func (s *redisStore) observe(op string, started time.Time, err error) {
	if s.onRedis != nil {
		s.onRedis(op, time.Since(started), err)
	}
}

func (s *redisStore) Close() error {
	if !s.ownsClient {
		return nil
	}
	s.closeOnce.Do(func() {
		s.closeErr = s.client.Close()
		if errors.Is(s.closeErr, redis.ErrClosed) {
			s.closeErr = nil
		}
	})
	return s.closeErr
}
