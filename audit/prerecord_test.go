package audit

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/authgate/pdp/pdp"
)

// TestPreRecordMatchesSealRecord checks that splicing the chain members
// into a record encoded ahead of time gives the same bytes and hash as
// sealing the whole map. The events have each field set or empty, and
// keys that sort around seq and prev_hash.
func TestPreRecordMatchesSealRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func(values ...string) string { return values[rng.IntN(len(values))] }
	now := time.Date(2026, 12, 4, 18, 0, 0, 123456789, time.UTC)
	prev := ""
	var scratch []byte
	for i := range 500 {
		ev := &pdp.AuditEvent{
			DecisionID: fmt.Sprintf("01J%020d", i), Allow: rng.IntN(2) == 0,
			Reason:         pdp.Reason(pick("allowed", "policy.denied", "")),
			HTTPStatus:     []int{0, 200, 403}[rng.IntN(3)],
			FrontDoor:      pick("envoy_grpc", "direct", ""),
			Route:          pick("default", "tenants", ""),
			BundleRevision: pick("2026-01-15.1", ""),
			TraceID:        pick("4bf92f3577b34da6a3ce929d0e0e4736", ""),
			InputDigest:    pick("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", ""),
			Subject:        pick("alice", "bob\"quote", "caf\u00e9", "\U0001F600 emoji", "bad\xffutf8", ""),
			Issuer:         pick("https://issuer.test", ""),
			SpiffeID:       pick("spiffe://example.test/sa/x", ""),
			Tenant:         pick("t-1", ""),
			Action:         pick("read", "\u2028sep", ""),
			Resource:       pick("/tenants/t-1/docs", "/\\back", ""),
			MessageID:      pick("msg_2Kx", ""),
			Sender:         pick("billing", ""),
			Sequence:       rng.Uint64N(1 << 40), HasSequence: rng.IntN(2) == 0,
		}
		if rng.IntN(3) == 0 {
			ev.Time = now.Add(time.Duration(i) * time.Millisecond)
		}
		seq := uint64(i + 1)

		pre, err := encodeRecord(decisionFields(ev, "pdp-a", now))
		if err != nil {
			t.Fatalf("event %d: encode: %v", i, err)
		}
		var got []byte
		got, gotHash, body := pre.seal([]byte("earlier line\n"), seq, prev, scratch)
		scratch = body
		want, wantHash, err := sealRecord(decisionFields(ev, "pdp-a", now), seq, prev)
		if err != nil {
			t.Fatalf("event %d: sealRecord: %v", i, err)
		}
		got = bytes.TrimPrefix(got, []byte("earlier line\n"))
		if !bytes.Equal(got, want) || gotHash != wantHash {
			t.Fatalf("event %d:\nseal       %s (hash %s)\nsealRecord %s (hash %s)", i, got, gotHash, want, wantHash)
		}
		prev = gotHash
	}
}
