package message_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authgate/pdp/message"
	"github.com/authgate/pdp/pdp"
)

// Standard Webhooks reference vectors (standard-webhooks/standard-webhooks
// libraries: Go TestWebhookSign for SW-1, Rust test_sign for SW-2).
const (
	sw1Secret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	sw1ID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	sw1Timestamp = 1614265330
	sw1Body      = `{"test": 2432232314}`
	sw1Signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

	sw2Secret    = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	sw2ID        = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"
	sw2Timestamp = 1649367553
	sw2Body      = `{"email":"test@example.com","username":"test_user"}`
	sw2Signature = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
)

func frozen(unix int64) func() time.Time {
	return func() time.Time { return time.Unix(unix, 0) }
}

func newVerifier(t *testing.T, cfg message.Config, now func() time.Time) *message.Verifier {
	t.Helper()
	v, err := message.NewVerifier(cfg, message.Options{Now: now})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func oneSender(name, secret string) message.Config {
	return message.Config{Senders: []message.Sender{{
		Name: name, Keys: []message.Key{{ID: "k1", Secret: secret}},
	}}}
}

func headers(id string, ts int64, sig string) map[string]string {
	return map[string]string{
		"webhook-id": id, "webhook-timestamp": strconv.FormatInt(ts, 10), "webhook-signature": sig,
	}
}

// sign returns a v1 signature entry of secret over the Standard Webhooks
// content, computed independently of the package.
func sign(secret, id string, ts int64, body string) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func verify(v *message.Verifier, h map[string]string, body string, req pdp.MessageRequirement) (*pdp.Message, error) {
	return v.Verify(context.Background(), &pdp.SignedMessage{Headers: h, Body: []byte(body)}, req)
}

func wantReason(t *testing.T, err error, want pdp.Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("Verify succeeded, want %s", want)
	}
	if got := pdp.ReasonOf(err, ""); got != want {
		t.Fatalf("Verify = %v, want reason %s", err, want)
	}
}

func TestStandardWebhooksVectors(t *testing.T) {
	cases := []struct {
		name, secret, id, body, sig string
		ts                          int64
	}{
		{"SW-1", sw1Secret, sw1ID, sw1Body, sw1Signature, sw1Timestamp},
		{"SW-1 unprefixed secret", strings.TrimPrefix(sw1Secret, "whsec_"), sw1ID, sw1Body, sw1Signature, sw1Timestamp},
		{"SW-2", sw2Secret, sw2ID, sw2Body, sw2Signature, sw2Timestamp},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, oneSender("svix", tc.secret), frozen(tc.ts))
			m, err := verify(v, headers(tc.id, tc.ts, tc.sig), tc.body, pdp.MessageRequirement{Required: true})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if m.ID != tc.id || m.Timestamp != tc.ts || m.Sender != "svix" || m.KeyID != "k1" || !m.Verified {
				t.Fatalf("message = %+v, want id %s, timestamp %d, sender svix, key k1, verified", m, tc.id, tc.ts)
			}
		})
	}
}

func TestStandardWebhooksNegatives(t *testing.T) {
	v := newVerifier(t, oneSender("svix", sw1Secret), frozen(sw1Timestamp))
	req := pdp.MessageRequirement{Required: true}
	cases := []struct {
		name    string
		headers map[string]string
		body    string
		want    pdp.Reason
	}{
		{"wrong signature", headers(sw1ID, sw1Timestamp, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="), sw1Body, pdp.ReasonSignatureInvalid},
		{"partial signature", headers(sw1ID, sw1Timestamp, "v1,"), sw1Body, pdp.ReasonSignatureInvalid},
		{"last char changed", headers(sw1ID, sw1Timestamp, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="), sw1Body, pdp.ReasonSignatureInvalid},
		{"garbage signature", headers(sw1ID, sw1Timestamp, "v1,dawfeoifkpqwoekfpqoekf"), sw1Body, pdp.ReasonSignatureInvalid},
		{"tampered body", headers(sw1ID, sw1Timestamp, sw1Signature), `{"test": 2432232315}`, pdp.ReasonSignatureInvalid},
		{"tampered id", headers(sw1ID+"x", sw1Timestamp, sw1Signature), sw1Body, pdp.ReasonSignatureInvalid},
		{"tampered timestamp", headers(sw1ID, sw1Timestamp+1, sw1Signature), sw1Body, pdp.ReasonSignatureInvalid},
		{"unknown version only", headers(sw1ID, sw1Timestamp, "v2,"+strings.TrimPrefix(sw1Signature, "v1,")), sw1Body, pdp.ReasonSignatureInvalid},
		{"missing id", without(headers(sw1ID, sw1Timestamp, sw1Signature), "webhook-id"), sw1Body, pdp.ReasonMessageInvalid},
		{"missing timestamp", without(headers(sw1ID, sw1Timestamp, sw1Signature), "webhook-timestamp"), sw1Body, pdp.ReasonMessageInvalid},
		{"missing signature", without(headers(sw1ID, sw1Timestamp, sw1Signature), "webhook-signature"), sw1Body, pdp.ReasonSignatureMissing},
		{"signed timestamp with sign", headers(sw1ID, sw1Timestamp, sw1Signature), sw1Body, ""},
	}
	cases[len(cases)-1].headers["webhook-timestamp"] = "+1614265330"
	cases[len(cases)-1].want = pdp.ReasonMessageInvalid
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(v, tc.headers, tc.body, req)
			wantReason(t, err, tc.want)
		})
	}
}

func without(h map[string]string, name string) map[string]string {
	delete(h, name)
	return h
}

func TestTimestampWindow(t *testing.T) {
	const now = 1_764_849_600
	v := newVerifier(t, oneSender("svix", sw1Secret), frozen(now))
	req := pdp.MessageRequirement{Required: true}
	cases := []struct {
		name   string
		offset time.Duration
		want   pdp.Reason
	}{
		{"now", 0, ""},
		{"just inside past", -5*time.Minute + time.Second, ""},
		{"just inside future", 5*time.Minute - time.Second, ""},
		{"old timestamp", -5 * time.Minute, pdp.ReasonMessageStale},
		{"new timestamp", 5*time.Minute + time.Second, pdp.ReasonMessageStale},
		{"far past", -24 * time.Hour, pdp.ReasonMessageStale},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := int64(now + tc.offset/time.Second)
			_, err := verify(v, headers("msg_1", ts, sign(sw1Secret, "msg_1", ts, sw1Body)), sw1Body, req)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, tc.want)
		})
	}
}

func TestMultipleSignatures(t *testing.T) {
	v := newVerifier(t, oneSender("svix", sw1Secret), frozen(sw1Timestamp))
	wrong := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
	header := wrong + " v2,anything " + sw1Signature + " " + wrong
	if _, err := verify(v, headers(sw1ID, sw1Timestamp, header), sw1Body, pdp.MessageRequirement{}); err != nil {
		t.Fatalf("Verify with one valid entry among several: %v", err)
	}
	tooMany := strings.Repeat(wrong+" ", 16) + sw1Signature
	_, err := verify(v, headers(sw1ID, sw1Timestamp, tooMany), sw1Body, pdp.MessageRequirement{})
	wantReason(t, err, pdp.ReasonSignatureInvalid)
}

func TestPartialBodyRejected(t *testing.T) {
	v := newVerifier(t, oneSender("svix", sw1Secret), frozen(sw1Timestamp))
	h := headers(sw1ID, sw1Timestamp, sw1Signature)
	_, err := v.Verify(context.Background(), &pdp.SignedMessage{Headers: h, Body: []byte(sw1Body), Truncated: true}, pdp.MessageRequirement{})
	wantReason(t, err, pdp.ReasonMessageInvalid)

	h[message.PartialBodyHeader] = "true"
	_, err = verify(v, h, sw1Body, pdp.MessageRequirement{})
	wantReason(t, err, pdp.ReasonMessageInvalid)
}

func TestConfigRejectsBadKeys(t *testing.T) {
	cases := []struct {
		name string
		key  message.Key
		want string
	}{
		{"empty secret", message.Key{ID: "k", Secret: ""}, "secret: is empty"},
		{"prefix only", message.Key{ID: "k", Secret: "whsec_"}, "secret: is empty"},
		{"not base64", message.Key{ID: "k", Secret: "whsec_!!!"}, "not valid base64"},
		{"too short", message.Key{ID: "k", Secret: "whsec_c2hvcnQ="}, "at least 16"},
		{"both kinds", message.Key{ID: "k", Secret: sw1Secret, PublicKey: "AAAA"}, "only one of"},
		{"bad public key", message.Key{ID: "k", PublicKey: "whpk_AAAA"}, "32 bytes"},
		{"no id", message.Key{Secret: sw1Secret}, "id: is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := message.Config{Senders: []message.Sender{{Name: "s", Keys: []message.Key{tc.key}}}}
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
				t.Fatalf("Validate error contains the secret: %v", err)
			}
		})
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	cfg := message.Config{
		Window: message.Window{Past: -time.Second},
		Senders: []message.Sender{
			{Name: "a"},
			{Name: "a", Keys: []message.Key{{ID: "k", Secret: ""}}},
		},
		Schemas: map[string]message.Schema{"t": {}},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate succeeded, want errors")
	}
	for _, want := range []string{"window.past", "senders[0].keys", "senders[1].name", "senders[1].keys[0]: secret", "schemas.t"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
}

func TestEd25519Signature(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := message.Config{Senders: []message.Sender{{Name: "ed", Keys: []message.Key{
		{ID: "ed1", PublicKey: "whpk_" + base64.StdEncoding.EncodeToString(pub)},
	}}}}
	v := newVerifier(t, cfg, frozen(sw1Timestamp))
	content := fmt.Sprintf("%s.%d.%s", sw1ID, sw1Timestamp, sw1Body)
	sig := "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(content)))

	m, err := verify(v, headers(sw1ID, sw1Timestamp, sig), sw1Body, pdp.MessageRequirement{})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if m.KeyID != "ed1" {
		t.Errorf("key id = %q, want ed1", m.KeyID)
	}
	_, err = verify(v, headers(sw1ID, sw1Timestamp, sig), sw1Body+" ", pdp.MessageRequirement{})
	wantReason(t, err, pdp.ReasonSignatureInvalid)
	// An HMAC entry never verifies against an Ed25519 key.
	_, err = verify(v, headers(sw1ID, sw1Timestamp, sw1Signature), sw1Body, pdp.MessageRequirement{})
	wantReason(t, err, pdp.ReasonSignatureInvalid)
}

func TestKeyRotation(t *testing.T) {
	const now = sw1Timestamp
	cfg := message.Config{Senders: []message.Sender{{Name: "svix", Keys: []message.Key{
		{ID: "old", Secret: sw2Secret, NotAfter: time.Unix(now-60, 0)},
		{ID: "new", Secret: sw1Secret},
	}}}}
	v := newVerifier(t, cfg, frozen(now))
	m, err := verify(v, headers(sw1ID, now, sw1Signature), sw1Body, pdp.MessageRequirement{})
	if err != nil {
		t.Fatalf("Verify with the new key: %v", err)
	}
	if m.KeyID != "new" {
		t.Errorf("key id = %q, want new", m.KeyID)
	}
	_, err = verify(v, headers("msg_x", now, sign(sw2Secret, "msg_x", now, sw1Body)), sw1Body, pdp.MessageRequirement{})
	wantReason(t, err, pdp.ReasonSignatureInvalid)
}
