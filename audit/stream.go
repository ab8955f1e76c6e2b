package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// streamBatch is the largest number of XADD commands sent in one
	// pipeline.
	streamBatch = 256
	// streamTimeout bounds one pipeline round trip.
	streamTimeout = 5 * time.Second
	// streamCloseTimeout bounds how long Close waits for queued records.
	streamCloseTimeout = 5 * time.Second
)

// streamSink copies records to a Redis stream after they are on disk. It
// never blocks the writer: when its queue is full, records are dropped from
// the stream and counted. Failures are counted and logged at most once per
// errorLogInterval.
//
// NOTE: a dropped or failed record leaves a gap in the stream copy; the
// file chain is complete, and a consumer detects the gap from the seq field.
type streamSink struct {
	client redis.UniversalClient
	key    string
	maxLen int64
	log    *slog.Logger

	queue chan map[string]any
	done  chan struct{}

	errors, dropped atomic.Uint64
	// failuresSinceLog is touched only by the sink goroutine.
	failuresSinceLog uint64
	lastLog          time.Time
}

func newStreamSink(client redis.UniversalClient, cfg StreamConfig, instance string, log *slog.Logger) *streamSink {
	s := &streamSink{
		client: client,
		key:    cfg.KeyPrefix + instance,
		maxLen: max(cfg.MaxLen, 0),
		log:    log,
		queue:  make(chan map[string]any, cfg.Queue),
		done:   make(chan struct{}),
	}
	go s.run()
	return s
}

// send queues records for the stream without blocking.
func (s *streamSink) send(records []map[string]any) {
	for _, r := range records {
		select {
		case s.queue <- r:
		default:
			s.dropped.Add(1)
		}
	}
}

// close stops taking records and waits for the queued ones, at most
// streamCloseTimeout.
func (s *streamSink) close() {
	close(s.queue)
	select {
	case <-s.done:
	case <-time.After(streamCloseTimeout):
		s.log.Warn("audit stream copy stopped with records still queued", "stream", s.key)
	}
}

func (s *streamSink) run() {
	defer close(s.done)
	batch := make([]map[string]any, 0, streamBatch)
	for r := range s.queue {
		batch = append(batch[:0], r)
	more:
		for len(batch) < streamBatch {
			select {
			case next, ok := <-s.queue:
				if !ok {
					break more
				}
				batch = append(batch, next)
			default:
				break more
			}
		}
		s.flush(batch)
	}
}

// flush sends one pipeline of XADD commands.
func (s *streamSink) flush(batch []map[string]any) {
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	defer cancel()
	pipe := s.client.Pipeline()
	for _, r := range batch {
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: s.key,
			MaxLen: s.maxLen,
			Approx: s.maxLen > 0,
			Values: streamValues(r),
		})
	}
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return
	}
	failed := uint64(0)
	for _, c := range cmds {
		if c.Err() != nil {
			failed++
		}
	}
	if failed == 0 {
		failed = uint64(len(batch))
	}
	s.errors.Add(failed)
	s.failuresSinceLog += failed
	if time.Since(s.lastLog) >= errorLogInterval {
		s.log.Warn("audit stream copy failed; the file chain is unaffected",
			"stream", s.key, "records", s.failuresSinceLog, "error", err)
		s.failuresSinceLog = 0
		s.lastLog = time.Now()
	}
}

// streamValues flattens a record into XADD field-value pairs in sorted key
// order, with every value as a string: JSON numbers and booleans keep their
// JSON text.
func streamValues(r map[string]any) []string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		out = append(out, k, streamValue(r[k]))
	}
	return out
}

func streamValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case uint64:
		return strconv.FormatUint(x, 10)
	case json.Number:
		return string(x)
	}
	return fmt.Sprint(v)
}
