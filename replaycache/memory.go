package replaycache

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/authgate/pdp/pdp"
)

// memoryStore keeps nonces and sequence streams in two bounded LRU lists
// under one mutex, so a check and its update are one atomic step.
//
// Eviction never lets a replay through: when the bound evicts a nonce that
// is still live, horizon rises above that nonce's message timestamp, and
// every message timestamped below horizon is denied with state.unavailable.
// An evicted live stream raises streamHorizon the same way, for messages of
// streams the store no longer has.
type memoryStore struct {
	cfg Config
	now func() time.Time
	log *slog.Logger

	mu      sync.Mutex
	nonces  *simplelru.LRU[nonceKey, nonceEntry]
	streams *simplelru.LRU[streamKey, *stream]
	// checkNow is the time of the check being run, read by the eviction
	// callbacks to tell live entries from expired ones.
	checkNow int64
	// horizon and streamHorizon are Unix milliseconds.
	horizon       int64
	streamHorizon int64
	// t0 is the recovery moment of the current guard, for the error text.
	t0 time.Time
}

type nonceKey struct{ sender, nonce string }

type nonceEntry struct {
	// timestamp and expires are Unix milliseconds.
	timestamp int64
	expires   int64
}

type streamKey struct{ sender, channel string }

// stream is one sender channel's sliding window: bit (n mod size) is set
// when sequence n in (high-size, high] was seen.
type stream struct {
	high     uint64
	bits     []uint64
	lastSeen int64 // Unix milliseconds of the newest message timestamp
	expires  int64 // Unix milliseconds
}

var _ Store = (*memoryStore)(nil)

func newMemoryStore(cfg Config, opts Options) (*memoryStore, error) {
	s := &memoryStore{cfg: cfg, now: opts.Now, log: opts.Logger}
	var err error
	s.nonces, err = simplelru.NewLRU(cfg.Memory.MaxEntries, s.onNonceEvicted)
	if err != nil {
		return nil, fmt.Errorf("memory replay store: %w", err)
	}
	s.streams, err = simplelru.NewLRU(cfg.Memory.MaxStreams, s.onStreamEvicted)
	if err != nil {
		return nil, fmt.Errorf("memory replay store: %w", err)
	}

	// The process may have accepted messages before it restarted, and their
	// nonces are gone: apply the lost-state guard from the start time.
	s.t0 = s.now()
	s.horizon = s.t0.Add(cfg.guard()).UnixMilli()
	return s, nil
}

func (s *memoryStore) Check(ctx context.Context, c pdp.ReplayCheck) error {
	now := s.now()
	if err := precheck(c, s.cfg.Window, now); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ts := c.Timestamp.UnixMilli()
	nk := nonceKey{c.Sender, c.Nonce}
	sk := streamKey{c.Sender, c.Channel}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.checkNow = now.UnixMilli()
	s.dropExpired()

	if ts < s.horizon {
		return stateLost(s.t0)
	}
	if e, ok := s.nonces.Peek(nk); ok && e.expires > s.checkNow {
		return nonceReused(c)
	}
	var st *stream
	if c.HasSequence {
		var ok bool
		st, ok = s.streams.Peek(sk)
		if ok && st.expires <= s.checkNow {
			st, ok = nil, false
		}
		if !ok && ts < s.streamHorizon {
			return stateLost(s.t0)
		}
		if st != nil {
			if v := st.verdict(c.Sequence, uint64(s.cfg.SequenceWindow), s.cfg.MaxSequenceJump); v != seqFresh {
				return v.err(c)
			}
		}
	}

	// Every check passed: record the nonce and the sequence number.
	s.nonces.Add(nk, nonceEntry{timestamp: ts, expires: s.checkNow + s.cfg.Window.ttl().Milliseconds()})
	if c.HasSequence {
		if st == nil {
			st = newStream(c.Sequence, s.cfg.SequenceWindow)
		} else {
			st.advance(c.Sequence)
		}
		st.lastSeen = max(st.lastSeen, ts)
		st.expires = s.checkNow + s.cfg.SequenceTTL.Milliseconds()
		s.streams.Add(sk, st)
	}
	return nil
}

// dropExpired removes expired entries from the old end of both lists, so
// the bound evicts live entries only when it is really full.
func (s *memoryStore) dropExpired() {
	const maxDropsPerCheck = 64
	for i := 0; i < maxDropsPerCheck; i++ {
		_, e, ok := s.nonces.GetOldest()
		if !ok || e.expires > s.checkNow {
			break
		}
		s.nonces.RemoveOldest()
	}
	for i := 0; i < maxDropsPerCheck; i++ {
		_, st, ok := s.streams.GetOldest()
		if !ok || st.expires > s.checkNow {
			break
		}
		s.streams.RemoveOldest()
	}
}

// onNonceEvicted runs under s.mu for every removed nonce.
func (s *memoryStore) onNonceEvicted(k nonceKey, e nonceEntry) {
	if e.expires <= s.checkNow || e.timestamp < s.horizon {
		return
	}
	s.horizon = e.timestamp + 1
	s.t0 = time.UnixMilli(s.checkNow)
	s.log.Warn("replay store evicted a live nonce; older messages are denied until they turn stale",
		"sender", k.sender, "max_entries", s.cfg.Memory.MaxEntries)
}

// onStreamEvicted runs under s.mu for every removed stream.
func (s *memoryStore) onStreamEvicted(k streamKey, st *stream) {
	if st.expires <= s.checkNow || st.lastSeen < s.streamHorizon {
		return
	}
	s.streamHorizon = st.lastSeen + 1
	s.t0 = time.UnixMilli(s.checkNow)
	s.log.Warn("replay store evicted a live sequence stream; older messages of unknown streams are denied",
		"sender", k.sender, "max_streams", s.cfg.Memory.MaxStreams)
}

func (s *memoryStore) Ready(context.Context) error { return nil }

func (s *memoryStore) Close() error { return nil }

func newStream(seq uint64, window int) *stream {
	st := &stream{high: seq, bits: make([]uint64, (window+63)/64)}
	st.set(seq)
	return st
}

func (st *stream) size() uint64 { return uint64(len(st.bits)) * 64 }

// verdict classifies seq without changing the stream. window is the
// configured sequence_window, which may be smaller than the bitmap.
func (st *stream) verdict(seq, window, maxJump uint64) seqVerdict {
	if seq > st.high {
		if seq-st.high > maxJump {
			return seqTooFar
		}
		return seqFresh
	}
	if st.high-seq >= window {
		return seqTooOld
	}
	if st.isSet(seq) {
		return seqDuplicate
	}
	return seqFresh
}

// advance records seq, which verdict accepted, sliding the window when seq
// is a new high.
func (st *stream) advance(seq uint64) {
	if seq > st.high {
		if seq-st.high >= st.size() {
			clear(st.bits)
		} else {
			for n := st.high + 1; n < seq; n++ {
				st.unset(n)
			}
		}
		st.high = seq
	}
	st.set(seq)
}

func (st *stream) bit(n uint64) (word int, mask uint64) {
	pos := n % st.size()
	return int(pos / 64), 1 << (pos % 64)
}

func (st *stream) set(n uint64) {
	w, m := st.bit(n)
	st.bits[w] |= m
}

func (st *stream) unset(n uint64) {
	w, m := st.bit(n)
	st.bits[w] &^= m
}

func (st *stream) isSet(n uint64) bool {
	w, m := st.bit(n)
	return st.bits[w]&m != 0
}
