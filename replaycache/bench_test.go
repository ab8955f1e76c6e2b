package replaycache_test

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/replaycache"
	"github.com/authgate/pdp/test/redisproc"
)

// benchChecks runs fresh checks (new nonce, next sequence) in parallel.
func benchChecks(b *testing.B, store replaycache.Store, clk *clock) {
	var n atomic.Uint64
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			// Moving the clock keeps eviction by max_entries from denying
			// messages that share the evicted nonces' timestamp.
			if i%100_000 == 0 {
				clk.Advance(time.Second)
			}
			err := store.Check(ctx, pdp.ReplayCheck{
				Sender: "bench", Channel: strconv.FormatUint(i%16, 10), Nonce: "n" + strconv.FormatUint(i, 10),
				Timestamp: clk.Now(),
			})
			if err != nil {
				b.Errorf("Check: %v", err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
}

func warm(b *testing.B, store replaycache.Store, clk *clock) {
	_ = store.Check(context.Background(), pdp.ReplayCheck{Sender: "bench", Nonce: "warmup", Timestamp: clk.Now()})
	clk.Advance(replaycache.DefaultFutureTolerance + time.Second)
}

func BenchmarkMemoryCheck(b *testing.B) {
	clk := newClock()
	store, err := replaycache.New(replaycache.Config{}, replaycache.Options{Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	warm(b, store, clk)
	benchChecks(b, store, clk)
}

func BenchmarkRedisCheck(b *testing.B) {
	server := redisproc.Start(b)
	clk := newClock()
	cfg := replaycache.Config{Backend: replaycache.BackendRedis,
		Redis: replaycache.RedisConfig{Addrs: []string{server.Addr}, OpTimeout: time.Second}}
	store, err := replaycache.New(cfg, replaycache.Options{Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	warm(b, store, clk)
	benchChecks(b, store, clk)
}

// TestRedisStepLatency measures one Check against a local redis-server in
// a bounded sequential loop and logs p50 and p99 (run with -v to see them).
func TestRedisStepLatency(t *testing.T) {
	const checks = 2000
	server := redisproc.Start(t)
	clk := newClock()
	cfg := replaycache.Config{Backend: replaycache.BackendRedis,
		Redis: replaycache.RedisConfig{Addrs: []string{server.Addr}}}
	store, err := replaycache.New(cfg, replaycache.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ctx := context.Background()
	_ = store.Check(ctx, pdp.ReplayCheck{Sender: "lat", Nonce: "warmup", Timestamp: clk.Now()})
	clk.Advance(replaycache.DefaultFutureTolerance + time.Second)

	samples := make([]time.Duration, 0, checks)
	for i := 0; i < checks; i++ {
		c := pdp.ReplayCheck{Sender: "lat", Nonce: "n" + strconv.Itoa(i), Timestamp: clk.Now(),
			Sequence: uint64(i + 1), HasSequence: true}
		start := time.Now()
		if err := store.Check(ctx, c); err != nil {
			t.Fatalf("Check %d: %v", i, err)
		}
		samples = append(samples, time.Since(start))
	}
	slices.Sort(samples)
	p50, p99 := samples[len(samples)/2], samples[len(samples)*99/100]
	t.Logf("redis replay check latency over %d sequential checks: p50 %s, p99 %s", checks, p50, p99)
	if p99 > replaycache.DefaultOpTimeout {
		t.Errorf("p99 %s exceeds the default op_timeout %s on loopback", p99, replaycache.DefaultOpTimeout)
	}
}

// BenchmarkMemoryStoreFull fills a memory store with three times its
// max_entries nonces on as many channels as max_streams allows, then
// reports the live heap per configured entry. The LRUs evict at their
// bounds, so the heap stays proportional to max_entries and max_streams
// however many messages pass.
func BenchmarkMemoryStoreFull(b *testing.B) {
	const maxEntries, maxStreams = 100_000, 10_000
	for b.Loop() {
		clk := newClock()
		store, err := replaycache.New(replaycache.Config{Memory: replaycache.MemoryConfig{
			MaxEntries: maxEntries, MaxStreams: maxStreams,
		}}, replaycache.Options{Now: clk.Now, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		warm(b, store, clk)
		before := liveHeap()
		ctx := context.Background()
		for i := range 3 * maxEntries {
			if i%maxEntries == 0 {
				clk.Advance(time.Second)
			}
			err := store.Check(ctx, pdp.ReplayCheck{
				Sender: "bench", Channel: strconv.Itoa(i % (3 * maxStreams)),
				Nonce: "n" + strconv.Itoa(i), Timestamp: clk.Now(),
			})
			if err != nil {
				b.Fatalf("Check %d: %v", i, err)
			}
		}
		grown := liveHeap() - before
		b.ReportMetric(float64(grown)/(1<<20), "heap-MB")
		b.ReportMetric(float64(grown)/maxEntries, "heap-bytes/entry")
		runtime.KeepAlive(store)
	}
}

// liveHeap returns the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
