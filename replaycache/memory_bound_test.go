package replaycache

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/authgate/pdp/pdp"
)

func TestMemoryStoreStaysWithinBounds(t *testing.T) {
	const maxEntries, maxStreams = 1000, 100
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	store, err := New(Config{Memory: MemoryConfig{MaxEntries: maxEntries, MaxStreams: maxStreams}},
		Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	mem := store.(*memoryStore)
	now = now.Add(DefaultFutureTolerance + time.Second)
	ctx := context.Background()
	for i := range 5 * maxEntries {
		if i%maxEntries == 0 {
			now = now.Add(time.Second)
		}
		err := store.Check(ctx, pdp.ReplayCheck{
			Sender: "s", Channel: strconv.Itoa(i % (5 * maxStreams)), Nonce: "n" + strconv.Itoa(i), Timestamp: now,
		})
		if err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
		if n := mem.nonces.Len(); n > maxEntries {
			t.Fatalf("after %d checks the store holds %d nonces, more than max_entries %d", i+1, n, maxEntries)
		}
		if n := mem.streams.Len(); n > maxStreams {
			t.Fatalf("after %d checks the store holds %d channels, more than max_streams %d", i+1, n, maxStreams)
		}
	}
}
