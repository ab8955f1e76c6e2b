package replaycache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/replaycache"
	"github.com/authgate/pdp/test/redisproc"
)

// clock is a settable time source shared by a test and its stores.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Unix(1_764_849_600, 0)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// backend builds stores that share one state (one Redis, or one process
// for memory, where both calls return the same store).
type backend struct {
	name   string
	shared bool
	config func() replaycache.Config
}

func memoryBackend() backend {
	return backend{name: "memory", config: func() replaycache.Config {
		return replaycache.Config{Backend: replaycache.BackendMemory,
			LostStateGuard: replaycache.GuardWindow}
	}}
}

func redisBackend(name string, redisConfig replaycache.RedisConfig) backend {
	return backend{name: name, shared: true, config: func() replaycache.Config {
		rc := redisConfig
		// Generous, because 1,000 goroutines queue for a pool connection.
		rc.OpTimeout = 5 * time.Second
		return replaycache.Config{Backend: replaycache.BackendRedis, Redis: rc,
			LostStateGuard: replaycache.GuardWindow}
	}}
}

// harness is one conformance case's stores, clock and sender.
type harness struct {
	t      *testing.T
	clk    *clock
	stores [2]replaycache.Store
	sender string
	next   int
}

func newHarness(t *testing.T, b backend) *harness {
	t.Helper()
	h := &harness{t: t, clk: newClock(), sender: strings.ReplaceAll(t.Name(), "/", "_")}
	for i := range h.stores {
		if i > 0 && !b.shared {
			h.stores[i] = h.stores[0]
			continue
		}
		s, err := replaycache.New(b.config(), replaycache.Options{Now: h.clk.Now})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		h.stores[i] = s
	}
	h.passGuard()
	return h
}

// passGuard sends a first message, which the lost-state guard of a new
// store or sender denies, and moves the clock past the guard.
func (h *harness) passGuard() {
	h.t.Helper()
	err := h.stores[0].Check(context.Background(), h.msg("guard", nil))
	if !errors.Is(err, replaycache.ErrStateLost) {
		h.t.Fatalf("first check = %v, want the lost-state guard (ErrStateLost)", err)
	}
	h.clk.Advance(replaycache.DefaultFutureTolerance + time.Second)
}

// msg returns a check for the harness sender with the current time.
func (h *harness) msg(nonce string, seq *uint64) pdp.ReplayCheck {
	c := pdp.ReplayCheck{Sender: h.sender, Channel: "main", Nonce: nonce, Timestamp: h.clk.Now()}
	if seq != nil {
		c.Sequence, c.HasSequence = *seq, true
	}
	return c
}

// seq returns a check with a new nonce and the given sequence number.
func (h *harness) seq(n uint64) pdp.ReplayCheck {
	h.next++
	return h.msg(fmt.Sprintf("seq-%d", h.next), &n)
}

func (h *harness) expect(store int, c pdp.ReplayCheck, want pdp.Reason) {
	h.t.Helper()
	err := h.stores[store].Check(context.Background(), c)
	if want == "" {
		if err != nil {
			h.t.Fatalf("Check(nonce %q, seq %d) = %v, want fresh", c.Nonce, c.Sequence, err)
		}
		return
	}
	if got := pdp.ReasonOf(err, ""); got != want {
		h.t.Fatalf("Check(nonce %q, seq %d) = %v, want %s", c.Nonce, c.Sequence, err, want)
	}
}

func TestConformance(t *testing.T) {
	single := redisproc.Start(t)
	cluster := redisproc.StartCluster(t, 3)
	sentinel := redisproc.StartSentinel(t)
	backends := []backend{
		memoryBackend(),
		redisBackend("redis", replaycache.RedisConfig{Addrs: []string{single.Addr}}),
		redisBackend("cluster", replaycache.RedisConfig{Addrs: cluster.Addrs(), Cluster: true}),
		redisBackend("sentinel", replaycache.RedisConfig{Addrs: []string{sentinel.Addr},
			MasterName: sentinel.MasterName}),
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { runConformance(t, b) })
	}
}

func runConformance(t *testing.T, b backend) {
	t.Run("replayed id denied", func(t *testing.T) {
		h := newHarness(t, b)
		h.expect(0, h.msg("m1", nil), "")
		h.expect(1, h.msg("m1", nil), pdp.ReasonNonceReused)
		h.expect(0, h.msg("m1", nil), pdp.ReasonNonceReused)
	})
	t.Run("ids are per sender", func(t *testing.T) {
		h := newHarness(t, b)
		h.expect(0, h.msg("m1", nil), "")
		other := h.msg("m1", nil)
		other.Sender += "-other"
		// Redis keeps a guard per sender, so a new sender may be guarded.
		err := h.stores[1].Check(context.Background(), other)
		if err != nil && !errors.Is(err, replaycache.ErrStateLost) {
			t.Fatalf("same id from another sender = %v, want fresh or the lost-state guard", err)
		}
	})
	t.Run("stale timestamp denied", func(t *testing.T) {
		h := newHarness(t, b)
		old := h.msg("old", nil)
		old.Timestamp = h.clk.Now().Add(-replaycache.DefaultPastTolerance)
		h.expect(0, old, pdp.ReasonMessageStale)
		future := h.msg("future", nil)
		future.Timestamp = h.clk.Now().Add(replaycache.DefaultFutureTolerance)
		h.expect(0, future, pdp.ReasonMessageStale)
	})
	t.Run("empty id invalid", func(t *testing.T) {
		h := newHarness(t, b)
		h.expect(0, h.msg("", nil), pdp.ReasonMessageInvalid)
	})
	t.Run("duplicate sequence denied", func(t *testing.T) {
		h := newHarness(t, b)
		h.expect(0, h.seq(7), "")
		h.expect(1, h.seq(7), pdp.ReasonSequenceRegressed)
		h.expect(0, h.seq(8), "")
		h.expect(1, h.seq(8), pdp.ReasonSequenceRegressed)
	})
	t.Run("sequence below window denied", func(t *testing.T) {
		h := newHarness(t, b)
		h.expect(0, h.seq(1000), "")
		h.expect(0, h.seq(1000-replaycache.DefaultSequenceWindow), pdp.ReasonSequenceRegressed)
		h.expect(1, h.seq(1000-replaycache.DefaultSequenceWindow+1), "")
		h.expect(0, h.seq(1000-replaycache.DefaultSequenceWindow+1), pdp.ReasonSequenceRegressed)
	})
	t.Run("reordered delivery accepted", func(t *testing.T) {
		h := newHarness(t, b)
		for _, n := range []uint64{10, 14, 11, 13, 12, 20, 15, 19, 16} {
			h.expect(int(n%2), h.seq(n), "")
		}
		for _, n := range []uint64{10, 12, 14, 16, 19, 20} {
			h.expect(int(n%2), h.seq(n), pdp.ReasonSequenceRegressed)
		}
	})
	t.Run("new high slides window", func(t *testing.T) {
		h := newHarness(t, b)
		h.expect(0, h.seq(5), "")
		h.expect(0, h.seq(6), "")
		h.expect(1, h.seq(5+replaycache.DefaultSequenceWindow+3), "")
		// 7 and 8 were never seen but are now below the window.
		h.expect(0, h.seq(8), pdp.ReasonSequenceRegressed)
		h.expect(0, h.seq(9+3), "")
		h.expect(0, h.seq(6+replaycache.DefaultSequenceWindow), "")
	})
	t.Run("sequence jump bounded", func(t *testing.T) {
		h := newHarness(t, b)
		h.expect(0, h.seq(1), "")
		h.expect(1, h.seq(1+replaycache.DefaultMaxSequenceJump+1), pdp.ReasonSequenceRegressed)
		h.expect(0, h.seq(2), "")
		h.expect(1, h.seq(2+replaycache.DefaultMaxSequenceJump), "")
	})
	t.Run("sequence above maximum invalid", func(t *testing.T) {
		h := newHarness(t, b)
		h.expect(0, h.seq(replaycache.MaxSequence), "")
		h.expect(0, h.seq(replaycache.MaxSequence+1), pdp.ReasonMessageInvalid)
	})
	t.Run("channels independent", func(t *testing.T) {
		h := newHarness(t, b)
		first := h.seq(3)
		second := h.seq(3)
		second.Channel = "audit"
		h.expect(0, first, "")
		h.expect(1, second, "")
	})
	t.Run("denied check records nothing", func(t *testing.T) {
		h := newHarness(t, b)
		h.expect(0, h.seq(50), "")
		n := uint64(50)
		h.expect(0, h.msg("retry", &n), pdp.ReasonSequenceRegressed)
		n = 51
		h.expect(1, h.msg("retry", &n), "")
	})
	t.Run("concurrent duplicates allow one", func(t *testing.T) {
		h := newHarness(t, b)
		const senders = 1000
		var fresh, reused, other atomic.Int64
		var wg sync.WaitGroup
		n := uint64(99)
		c := h.msg("dup", &n)
		for i := 0; i < senders; i++ {
			wg.Add(1)
			go func(store replaycache.Store) {
				defer wg.Done()
				err := store.Check(context.Background(), c)
				switch {
				case err == nil:
					fresh.Add(1)
				case pdp.ReasonOf(err, "") == pdp.ReasonNonceReused:
					reused.Add(1)
				default:
					other.Add(1)
					t.Errorf("concurrent Check = %v, want fresh or replay.nonce_reused", err)
				}
			}(h.stores[i%2])
		}
		wg.Wait()
		if got := fresh.Load(); got != 1 {
			t.Errorf("fresh answers = %d, want exactly 1", got)
		}
		if got := reused.Load(); got != senders-1 {
			t.Errorf("replay.nonce_reused answers = %d, want %d", got, senders-1)
		}
	})
}
