package audit

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authgate/pdp/test/redisproc"
)

func TestStreamCopiesChain(t *testing.T) {
	srv := redisproc.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer client.Close()

	cfg := testConfig(t)
	cfg.CheckpointEvery = 5
	cfg.RedisStream = StreamConfig{Enabled: true, MaxLen: 1000}
	l, err := Open(cfg, Options{Instance: testInstance, Logger: quietLogger(), Redis: client})
	if err != nil {
		t.Fatal(err)
	}
	ids := record(t, l, 12)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	res := verifyDir(t, cfg)

	ctx := context.Background()
	entries, err := client.XRange(ctx, DefaultStreamKeyPrefix+testInstance, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(entries)) != res.Records {
		t.Fatalf("stream has %d entries, want %d (every record of the chain)", len(entries), res.Records)
	}
	prev := GenesisHash
	decision := 0
	for i, e := range entries {
		v := e.Values
		if v["seq"] != strconv.Itoa(i+1) {
			t.Errorf("entry %d seq = %v, want %d", i, v["seq"], i+1)
		}
		if v["prev_hash"] != prev {
			t.Errorf("entry %d prev_hash = %v, want %s", i, v["prev_hash"], prev)
		}
		prev, _ = v["hash"].(string)
		if v["type"] == TypeDecision {
			if v["decision_id"] != ids[decision] {
				t.Errorf("entry %d decision_id = %v, want %s", i, v["decision_id"], ids[decision])
			}
			decision++
		}
	}
	if prev != res.HeadHash {
		t.Errorf("stream head %s differs from file head %s", prev, res.HeadHash)
	}
}

func TestStreamFailureDoesNotBlockRecords(t *testing.T) {
	srv := redisproc.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond})
	defer client.Close()

	cfg := testConfig(t)
	cfg.RedisStream = StreamConfig{Enabled: true}
	logs := &syncBuffer{}
	l, err := Open(cfg, Options{Instance: testInstance, Redis: client,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	record(t, l, 20)
	if err := l.Ready(); err != nil {
		t.Errorf("Ready = %v; a Redis outage must not fail the file sink", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.StreamErrors == 0 {
		t.Errorf("StreamErrors = 0, want the failed copies counted (stats %+v)", st)
	}
	if n := strings.Count(logs.String(), "audit stream copy failed"); n != 1 {
		t.Errorf("stream failure logged %d times, want once (rate-limited):\n%s", n, logs)
	}
	verifyDir(t, cfg)
}
