package replaycache_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/replaycache"
	"github.com/authgate/pdp/test/redisproc"
)

func newRedisStore(t *testing.T, addr string, clk *clock, opTimeout time.Duration) replaycache.Store {
	t.Helper()
	cfg := replaycache.Config{Backend: replaycache.BackendRedis,
		LostStateGuard: replaycache.GuardWindow,
		Redis:          replaycache.RedisConfig{Addrs: []string{addr}, OpTimeout: opTimeout}}
	s, err := replaycache.New(cfg, replaycache.Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func check(s replaycache.Store, clk *clock, nonce string, seq uint64) error {
	return s.Check(context.Background(), pdp.ReplayCheck{
		Sender: "billing", Channel: "main", Nonce: nonce, Timestamp: clk.Now(),
		Sequence: seq, HasSequence: true,
	})
}

func TestRedisKilledAndRestarted(t *testing.T) {
	server := redisproc.Start(t)
	clk := newClock()
	store := newRedisStore(t, server.Addr, clk, time.Second)

	// A new sender starts under the guard.
	if err := check(store, clk, "warmup", 1); !errors.Is(err, replaycache.ErrStateLost) {
		t.Fatalf("first check = %v, want ErrStateLost", err)
	}
	clk.Advance(replaycache.DefaultFutureTolerance + time.Second)
	if err := check(store, clk, "m1", 10); err != nil {
		t.Fatalf("fresh message before the outage: %v", err)
	}
	m1 := pdp.ReplayCheck{Sender: "billing", Channel: "main", Nonce: "m1", Timestamp: clk.Now(), Sequence: 10, HasSequence: true}

	server.Kill()
	clk.Advance(time.Second)
	err := check(store, clk, "m2", 11)
	if err == nil {
		t.Fatal("Check with Redis down succeeded, want an error")
	}
	if got := pdp.ReasonOf(err, pdp.ReasonStateUnavailable); got != pdp.ReasonStateUnavailable {
		t.Fatalf("Check with Redis down = %v, engine would answer %s; want state.unavailable", err, got)
	}

	server.Restart()
	clk.Advance(time.Second)
	// m1 is still inside the window, and Redis forgot it.
	err = store.Check(context.Background(), m1)
	if !errors.Is(err, replaycache.ErrStateLost) {
		t.Fatalf("replay of m1 after restart = %v, want ErrStateLost", err)
	}
	if got := pdp.ReasonOf(err, ""); got != pdp.ReasonStateUnavailable {
		t.Fatalf("replay of m1 after restart has reason %s, want state.unavailable", got)
	}

	// Once the guard has passed, new messages flow and m1 is stale.
	clk.Advance(replaycache.DefaultFutureTolerance + time.Second)
	if err := check(store, clk, "m3", 12); err != nil {
		t.Fatalf("fresh message after the guard: %v", err)
	}
	err = store.Check(context.Background(), m1)
	if got := pdp.ReasonOf(err, ""); got != pdp.ReasonMessageStale {
		t.Fatalf("replay of m1 after the guard = %v, want message.stale", err)
	}
}

func TestRedisRollbackDetected(t *testing.T) {
	server := redisproc.Start(t)
	clk := newClock()
	store := newRedisStore(t, server.Addr, clk, time.Second)
	admin := redis.NewClient(&redis.Options{Addr: server.Addr})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()

	_ = check(store, clk, "warmup", 1)
	clk.Advance(replaycache.DefaultFutureTolerance + time.Second)
	if err := check(store, clk, "m1", 5); err != nil {
		t.Fatalf("m1: %v", err)
	}
	marker := replaycache.DefaultKeyPrefix + "{billing}:epoch"
	saved, err := admin.HGetAll(ctx, marker).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := check(store, clk, "m2", 6); err != nil {
		t.Fatalf("m2: %v", err)
	}

	// Simulate a failover to a replica that missed m2: the marker goes back
	// to its state after m1 and m2's nonce is gone.
	if err := admin.HSet(ctx, marker, saved).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Del(ctx, replaycache.DefaultKeyPrefix+"{billing}:n:m2").Err(); err != nil {
		t.Fatal(err)
	}
	m2 := pdp.ReplayCheck{Sender: "billing", Channel: "other", Nonce: "m2", Timestamp: clk.Now()}
	if err := store.Check(ctx, m2); !errors.Is(err, replaycache.ErrStateLost) {
		t.Fatalf("replay of m2 after rollback = %v, want ErrStateLost", err)
	}
	// A second store sharing Redis also denies, because the reset T0 is in Redis.
	other := newRedisStore(t, server.Addr, clk, time.Second)
	if err := other.Check(ctx, m2); !errors.Is(err, replaycache.ErrStateLost) {
		t.Fatalf("replay of m2 on another store = %v, want ErrStateLost", err)
	}
}

func TestRedisTimeoutIsUnavailable(t *testing.T) {
	// A listener that accepts connections and never replies.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = conn.Close() })
		}
	}()

	clk := newClock()
	store := newRedisStore(t, l.Addr().String(), clk, 0)
	start := time.Now()
	err = check(store, clk, "m1", 1)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Check against a silent server succeeded, want an error")
	}
	if got := pdp.ReasonOf(err, pdp.ReasonStateUnavailable); got != pdp.ReasonStateUnavailable {
		t.Fatalf("Check against a silent server = %v, want an unavailable error", err)
	}
	if elapsed > time.Second {
		t.Fatalf("Check took %s, want about the 50ms op_timeout", elapsed)
	}
}

func TestMemoryEvictionNeverAllowsReplay(t *testing.T) {
	clk := newClock()
	cfg := replaycache.Config{Memory: replaycache.MemoryConfig{MaxEntries: 4}}
	store, err := replaycache.New(cfg, replaycache.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(replaycache.DefaultFutureTolerance + time.Second)
	ctx := context.Background()
	first := pdp.ReplayCheck{Sender: "s", Nonce: "n0", Timestamp: clk.Now()}
	if err := store.Check(ctx, first); err != nil {
		t.Fatalf("first: %v", err)
	}
	clk.Advance(time.Second)
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
		if err := store.Check(ctx, pdp.ReplayCheck{Sender: "s", Nonce: n, Timestamp: clk.Now()}); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	// n0 was evicted while live: its replay must not pass.
	err = store.Check(ctx, first)
	if !errors.Is(err, replaycache.ErrStateLost) {
		t.Fatalf("replay of an evicted nonce = %v, want ErrStateLost", err)
	}
	// Messages stamped after the evicted ones still flow.
	clk.Advance(time.Second)
	if err := store.Check(ctx, pdp.ReplayCheck{Sender: "s", Nonce: "n6", Timestamp: clk.Now()}); err != nil {
		t.Fatalf("fresh message after eviction: %v", err)
	}
}

func TestMemoryNonceExpires(t *testing.T) {
	clk := newClock()
	store, err := replaycache.New(replaycache.Config{}, replaycache.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(replaycache.DefaultFutureTolerance + time.Second)
	ctx := context.Background()
	c := pdp.ReplayCheck{Sender: "s", Nonce: "n", Timestamp: clk.Now()}
	if err := store.Check(ctx, c); err != nil {
		t.Fatal(err)
	}
	clk.Advance(11 * time.Minute)
	c.Timestamp = clk.Now()
	if err := store.Check(ctx, c); err != nil {
		t.Fatalf("same id after the window passed: %v, want fresh", err)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := replaycache.Config{
		Backend: "etcd", SequenceWindow: 5000, LostStateGuard: "none",
		Window: replaycache.Window{ClockSkew: -time.Second},
		Redis:  replaycache.RedisConfig{KeyPrefix: "a{b}"},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate succeeded, want errors")
	}
	for _, key := range []string{"backend", "sequence_window", "lost_state_guard", "window.clock_skew", "redis.key_prefix"} {
		if !strings.Contains(err.Error(), key+":") {
			t.Errorf("Validate error lacks key %s:\n%v", key, err)
		}
	}

	redisCfg := replaycache.Config{Backend: replaycache.BackendRedis,
		Redis: replaycache.RedisConfig{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, MasterName: "m", Cluster: true}}
	err = redisCfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "redis.cluster:") {
		t.Fatalf("Validate = %v, want a redis.cluster error", err)
	}
	if _, err := replaycache.New(replaycache.Config{Backend: replaycache.BackendRedis}, replaycache.Options{}); err == nil {
		t.Fatal("New without redis.addrs succeeded, want an error")
	}
}

func TestRecoveryMomentGuard(t *testing.T) {
	server := redisproc.Start(t)
	clk := newClock()
	cfg := replaycache.Config{Backend: replaycache.BackendRedis,
		LostStateGuard: replaycache.GuardRecoveryMoment,
		Redis:          replaycache.RedisConfig{Addrs: []string{server.Addr}, OpTimeout: time.Second}}
	store, err := replaycache.New(cfg, replaycache.Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })

	clk.Advance(time.Second)
	if err := check(store, clk, "m1", 10); err != nil {
		t.Fatalf("first message on a new store: %v, want accepted", err)
	}
	m1 := pdp.ReplayCheck{Sender: "billing", Channel: "main", Nonce: "m1",
		Timestamp: clk.Now(), Sequence: 10, HasSequence: true}

	server.Restart()
	clk.Advance(2 * time.Second)
	err = store.Check(context.Background(), m1)
	if !errors.Is(err, replaycache.ErrStateLost) {
		t.Fatalf("replay of m1 stamped before the restart = %v, want ErrStateLost", err)
	}
	clk.Advance(time.Second)
	if err := check(store, clk, "m2", 11); err != nil {
		t.Fatalf("message stamped after the restart: %v, want accepted", err)
	}
}
