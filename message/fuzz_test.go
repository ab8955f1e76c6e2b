package message_test

import (
	"context"
	"testing"

	"github.com/authgate/pdp/message"
	"github.com/authgate/pdp/pdp"
)

// FuzzVerify feeds arbitrary headers and bodies to the verifier: it must
// never panic, and every rejection must carry a message or signature code.
func FuzzVerify(f *testing.F) {
	f.Add(sw1ID, "1614265330", sw1Signature, sw1Body, "")
	f.Add(sw1ID, "1614265330", "v1, v1a,AAAA v2,x", `{"sequence":"1","sequence":2}`, "svix")
	f.Add("", "+1", "v1,", `{"scope":`, "nobody")
	cfg := message.Config{Senders: []message.Sender{{
		Name: "svix", Keys: []message.Key{{ID: "k1", Secret: sw1Secret}}, Scopes: []string{"a"},
	}}}
	v, err := message.NewVerifier(cfg, message.Options{Now: frozen(sw1Timestamp)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, ts, sig, body, sender string) {
		msg := &pdp.SignedMessage{Body: []byte(body), Headers: map[string]string{
			"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig, "webhook-sender": sender,
		}}
		m, err := v.Verify(context.Background(), msg, pdp.MessageRequirement{})
		if err == nil {
			if m == nil || !m.Verified {
				t.Fatalf("Verify accepted without a verified message: %+v", m)
			}
			return
		}
		switch pdp.ReasonOf(err, "") {
		case pdp.ReasonSignatureMissing, pdp.ReasonSignatureInvalid, pdp.ReasonMessageStale, pdp.ReasonMessageInvalid:
		default:
			t.Fatalf("Verify = %v, want a signature.* or message.* reason", err)
		}
	})
}
