package replaycache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/replaycache"
	"github.com/authgate/pdp/test/redisproc"
)

// redisCall is one call of Options.OnRedis.
type redisCall struct {
	op  string
	d   time.Duration
	err error
}

// redisRecorder collects OnRedis calls.
type redisRecorder struct {
	mu    sync.Mutex
	calls []redisCall
}

func (r *redisRecorder) record(op string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, redisCall{op: op, d: d, err: err})
}

// take returns the calls since the last take and clears them.
func (r *redisRecorder) take() []redisCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := r.calls
	r.calls = nil
	return calls
}

// expectRedisCall fails the test unless calls is one call of op, with a
// positive latency and an error exactly when wantErr is set.
func expectRedisCall(t *testing.T, step string, calls []redisCall, op string, wantErr bool) {
	t.Helper()
	if len(calls) != 1 {
		t.Fatalf("%s: OnRedis calls = %d, want 1", step, len(calls))
	}
	c := calls[0]
	if c.op != op {
		t.Errorf("%s: op = %q, want %q", step, c.op, op)
	}
	if c.d <= 0 {
		t.Errorf("%s: latency = %v, want > 0", step, c.d)
	}
	if wantErr && c.err == nil {
		t.Errorf("%s: error is nil, want the Redis error", step)
	}
	if !wantErr && c.err != nil {
		t.Errorf("%s: error = %v, want nil", step, c.err)
	}
}

func TestOnRedis(t *testing.T) {
	server := redisproc.Start(t)
	clk := newClock()
	rec := &redisRecorder{}
	cfg := replaycache.Config{Backend: replaycache.BackendRedis,
		LostStateGuard: replaycache.GuardWindow,
		Redis:          replaycache.RedisConfig{Addrs: []string{server.Addr}, OpTimeout: time.Second}}
	store, err := replaycache.New(cfg, replaycache.Options{Now: clk.Now, OnRedis: rec.record})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ctx := context.Background()

	if err := store.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	expectRedisCall(t, "ready", rec.take(), replaycache.OpPing, false)

	// The first check of a sender is denied under the guard, but its round
	// trip succeeded.
	_ = check(store, clk, "m1", 1)
	expectRedisCall(t, "check", rec.take(), replaycache.OpCheck, false)

	// A check rejected before any Redis call reports nothing.
	_ = store.Check(ctx, pdp.ReplayCheck{Sender: "billing", Timestamp: clk.Now()})
	if calls := rec.take(); len(calls) != 0 {
		t.Errorf("OnRedis calls for a check without a message id = %d, want 0", len(calls))
	}

	server.Kill()
	if err := check(store, clk, "m2", 2); err == nil {
		t.Fatal("Check with Redis down returned nil")
	}
	expectRedisCall(t, "check with redis down", rec.take(), replaycache.OpCheck, true)
	if err := store.Ready(ctx); err == nil {
		t.Fatal("Ready with Redis down returned nil")
	}
	expectRedisCall(t, "ready with redis down", rec.take(), replaycache.OpPing, true)
}
