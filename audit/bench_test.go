package audit

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkRecord measures records per second and per-Record latency with
// 16 concurrent callers per CPU (b.SetParallelism) for each durability.
// Latency percentiles are reported as extra metrics.
func BenchmarkRecord(b *testing.B) {
	modes := []struct {
		name string
		cfg  func(*Config)
	}{
		{"always", func(c *Config) { c.Durability = DurabilityAlways }},
		{"batch", func(c *Config) { c.Durability = DurabilityBatch }},
		{"batch_wait_2ms", func(c *Config) {
			c.Durability = DurabilityBatch
			c.BatchMaxWait = 2 * time.Millisecond
		}},
		{"none", func(c *Config) { c.Durability = DurabilityNone }},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			cfg := testConfig(b)
			m.cfg(&cfg)
			l, _ := openLog(b, cfg)
			defer l.Close()

			var mu sync.Mutex
			var latencies []time.Duration
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				local := make([]time.Duration, 0, 1024)
				ev := testEvent(1)
				for pb.Next() {
					start := time.Now()
					if err := l.Record(context.Background(), ev); err != nil {
						b.Error(err)
						return
					}
					local = append(local, time.Since(start))
				}
				mu.Lock()
				latencies = append(latencies, local...)
				mu.Unlock()
			})
			b.StopTimer()

			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			slices.Sort(latencies)
			if n := len(latencies); n > 0 {
				b.ReportMetric(float64(latencies[n/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(latencies[n*99/100].Microseconds()), "p99-µs")
			}
			st := l.Stats()
			if st.Batches > 0 {
				b.ReportMetric(float64(st.Records)/float64(st.Batches), "records/fsync")
			}
		})
	}
}
