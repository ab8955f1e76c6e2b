package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/authgate/pdp/test/redisproc"
)

// senderSecret is the Standard Webhooks reference test secret.
const senderSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

const backchannelConfig = `
routes:
  - name: callbacks
    methods: [POST]
    paths: ["/callbacks/**"]
    message: {required: true, senders: [billing]}
  - name: default
replay:
  backend: redis
  redis: {addrs: ["%s"], op_timeout: 200ms}
messages:
  # A short future tolerance keeps the lost-state guard, which denies
  # messages stamped before the recovery moment plus this bound, short.
  window: {past: 5m, future: 2s}
  senders:
    - name: billing
      keys: [{id: k1, secret: "%s"}]
      scopes: ["payments:notify"]
      tenant: t-42
`

// signedCallback returns a direct-API decision body carrying a callback on
// channel "main", signed with the Standard Webhooks v1 scheme.
func signedCallback(t *testing.T, id string, sequence int, ts time.Time) string {
	t.Helper()
	return signedOnChannel(t, "main", id, sequence, ts)
}

func signedOnChannel(t *testing.T, channel, id string, sequence int, ts time.Time) string {
	t.Helper()
	body := fmt.Sprintf(`{"event":"payment.settled","scope":"payments:notify","tenant":"t-42",`+
		`"channel":%q,"sequence":%d}`, channel, sequence)
	stamp := strconv.FormatInt(ts.Unix(), 10)
	key, err := base64.StdEncoding.DecodeString(senderSecret[len("whsec_"):])
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + stamp + "." + body))
	signature := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))

	req := map[string]any{
		"http": map[string]any{"method": "POST", "path": "/callbacks/payments",
			"headers": map[string]string{"content-type": "application/json"}},
		"message": map[string]any{
			"headers": map[string]string{"webhook-id": id, "webhook-timestamp": stamp,
				"webhook-signature": signature, "webhook-sender": "billing"},
			"body": body,
		},
	}
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestServeSignedCallbacksWithRedis(t *testing.T) {
	redis := redisproc.Start(t)
	configFile := filepath.Join(t.TempDir(), "pdp.yaml")
	config := fmt.Sprintf(backchannelConfig, redis.Addr, senderSecret)
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, configFile)
	// A store first used is treated like one that lost its state, so fresh
	// messages pass only once the guard has ended.
	waitGuardEnded(t, s, "warmup")
	now := time.Now()

	cases := []struct {
		name string
		body string
		want string
	}{
		{"fresh message", signedCallback(t, "msg_1", 1, now), "policy.allowed"},
		{"replayed id", signedCallback(t, "msg_1", 1, now), "replay.nonce_reused"},
		{"new id, same sequence", signedCallback(t, "msg_2", 1, now), "replay.sequence_regressed"},
		{"reordered inside window", signedCallback(t, "msg_4", 3, now), "policy.allowed"},
		{"late arrival inside window", signedCallback(t, "msg_3", 2, now), "policy.allowed"},
		{"stale timestamp", signedCallback(t, "msg_5", 5, now.Add(-10*time.Minute)), "message.stale"},
		{"no signature", `{"http":{"method":"POST","path":"/callbacks/payments"}}`, "signature.missing"},
	}
	for _, tc := range cases {
		_, d := s.decide(tc.body)
		if d.Reason != tc.want {
			t.Errorf("%s: reason %q, want %q", tc.name, d.Reason, tc.want)
		}
	}

	tampered := signedCallback(t, "msg_6", 6, now)
	tampered = tampered[:len(tampered)-20] + "X" + tampered[len(tampered)-19:]
	if _, d := s.decide(tampered); d.Allow {
		t.Errorf("tampered message allowed: %+v", d)
	}

	redis.Kill()
	if _, d := s.decide(signedCallback(t, "msg_7", 7, now)); d.Reason != "state.unavailable" {
		t.Errorf("Redis down: reason %q, want state.unavailable", d.Reason)
	}
	redis.Restart()
	if _, d := s.decide(signedCallback(t, "msg_1", 1, now)); d.Reason != "state.unavailable" {
		t.Errorf("replay of msg_1 after Redis lost its state: reason %q, want state.unavailable", d.Reason)
	}
	waitGuardEnded(t, s, "after-restart")
	if _, d := s.decide(signedCallback(t, "msg_1", 1, now)); d.Allow {
		t.Errorf("replay of msg_1 after the guard: %+v, want deny", d)
	}
}

// waitGuardEnded sends fresh messages until one is allowed.
func waitGuardEnded(t *testing.T, s *server, prefix string) {
	t.Helper()
	attempt := 0
	waitFor(t, "lost-state guard to end", func() bool {
		attempt++
		id := fmt.Sprintf("%s-%d", prefix, attempt)
		_, d := s.decide(signedOnChannel(t, prefix, id, attempt, time.Now()))
		return d.Allow
	})
}
