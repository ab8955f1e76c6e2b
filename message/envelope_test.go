package message_test

import (
	"testing"

	"github.com/authgate/pdp/message"
	"github.com/authgate/pdp/pdp"
)

const now = 1_764_849_600

func billingConfig() message.Config {
	return message.Config{
		Senders: []message.Sender{
			{
				Name: "billing", Keys: []message.Key{{ID: "k1", Secret: sw1Secret}},
				Scopes: []string{"payments:notify"}, Tenant: "t-42", RequireSequence: true,
			},
			{Name: "crm", Keys: []message.Key{{ID: "k2", Secret: sw2Secret}}},
		},
		Schemas: map[string]message.Schema{"payment.settled": {Inline: `{
			"type": "object",
			"required": ["type", "amount"],
			"properties": {"amount": {"type": "integer", "minimum": 0}}
		}`}},
	}
}

func signedHeaders(secret, body string) map[string]string {
	return headers("msg_1", now, sign(secret, "msg_1", now, body))
}

func TestEnvelopeFromSignedBody(t *testing.T) {
	v := newVerifier(t, billingConfig(), frozen(now))
	body := `{"type":"payment.settled","amount":5,"sequence":1812,"scope":"payments:notify",` +
		`"correlation_id":"c-9f1","channel":"payments"}`
	m, err := verify(v, signedHeaders(sw1Secret, body), body, pdp.MessageRequirement{Senders: []string{"billing"}, Type: "payment.settled"})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := pdp.Message{
		Verified: true, ID: "msg_1", Type: "payment.settled", Sender: "billing", KeyID: "k1",
		Timestamp: now, Sequence: 1812, HasSequence: true, Channel: "payments",
		CorrelationID: "c-9f1", Scope: "payments:notify", Tenant: "t-42",
	}
	if *m != want {
		t.Fatalf("message = %+v\nwant      %+v", *m, want)
	}
}

func TestEnvelopeRejects(t *testing.T) {
	v := newVerifier(t, billingConfig(), frozen(now))
	req := pdp.MessageRequirement{Senders: []string{"billing"}}
	cases := []struct {
		name  string
		body  string
		extra map[string]string
	}{
		{"no sequence", `{"scope":"payments:notify"}`, nil},
		{"negative sequence", `{"sequence":-1}`, nil},
		{"fractional sequence", `{"sequence":1.5}`, nil},
		{"sequence too large", `{"sequence":9007199254740992}`, nil},
		{"scope not allowed", `{"sequence":1,"scope":"admin"}`, nil},
		{"other tenant", `{"sequence":1,"tenant":"t-1"}`, nil},
		{"scope not a string", `{"sequence":1,"scope":["a"]}`, nil},
		{"duplicate field", `{"sequence":1,"scope":"payments:notify","scope":"admin"}`, nil},
		{"broken JSON", `{"sequence":1`, nil},
		{"trailing data", `{"sequence":1} {}`, nil},
		{"unsigned sequence header", `{"scope":"payments:notify"}`, map[string]string{"webhook-sequence": "7"}},
		{"header differs from body", `{"sequence":1,"scope":"payments:notify"}`, map[string]string{"webhook-scope": "admin"}},
		{"header without body tenant", `{"sequence":1}`, map[string]string{"webhook-tenant": "t-42"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := signedHeaders(sw1Secret, tc.body)
			for k, val := range tc.extra {
				h[k] = val
			}
			_, err := verify(v, h, tc.body, req)
			wantReason(t, err, pdp.ReasonMessageInvalid)
		})
	}
}

func TestEnvelopeHeaderMatchingBodyAccepted(t *testing.T) {
	v := newVerifier(t, billingConfig(), frozen(now))
	body := `{"sequence":"12","scope":"payments:notify"}`
	h := signedHeaders(sw1Secret, body)
	h["webhook-sequence"] = "12"
	h["webhook-scope"] = "payments:notify"
	m, err := verify(v, h, body, pdp.MessageRequirement{Senders: []string{"billing"}})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if m.Sequence != 12 || !m.HasSequence {
		t.Errorf("sequence = %d (present %v), want 12", m.Sequence, m.HasSequence)
	}
}

func TestSchemaValidation(t *testing.T) {
	v := newVerifier(t, billingConfig(), frozen(now))
	req := pdp.MessageRequirement{Senders: []string{"billing"}, Type: "payment.settled"}
	cases := []struct {
		name, body string
		ok         bool
	}{
		{"valid", `{"type":"payment.settled","amount":3,"sequence":1}`, true},
		{"missing amount", `{"type":"payment.settled","sequence":1}`, false},
		{"negative amount", `{"type":"payment.settled","amount":-3,"sequence":1}`, false},
		{"type differs from route", `{"type":"payment.refunded","amount":3,"sequence":1}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(v, signedHeaders(sw1Secret, tc.body), tc.body, req)
			if tc.ok {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, pdp.ReasonMessageInvalid)
		})
	}
	_, err := verify(v, signedHeaders(sw1Secret, `{"sequence":1}`), `{"sequence":1}`,
		pdp.MessageRequirement{Senders: []string{"billing"}, Type: "unknown.type"})
	wantReason(t, err, pdp.ReasonMessageInvalid)
}

func TestSenderIdentification(t *testing.T) {
	v := newVerifier(t, billingConfig(), frozen(now))
	crmBody := `{"event":"x"}`
	crmHeaders := func() map[string]string { return signedHeaders(sw2Secret, crmBody) }

	t.Run("tries every route sender", func(t *testing.T) {
		m, err := verify(v, crmHeaders(), crmBody, pdp.MessageRequirement{})
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if m.Sender != "crm" {
			t.Errorf("sender = %q, want crm", m.Sender)
		}
	})
	t.Run("sender header selects", func(t *testing.T) {
		h := crmHeaders()
		h["webhook-sender"] = "crm"
		if _, err := verify(v, h, crmBody, pdp.MessageRequirement{}); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
	t.Run("sender header names another sender", func(t *testing.T) {
		h := crmHeaders()
		h["webhook-sender"] = "billing"
		_, err := verify(v, h, crmBody, pdp.MessageRequirement{})
		wantReason(t, err, pdp.ReasonSignatureInvalid)
	})
	t.Run("sender header names unknown sender", func(t *testing.T) {
		h := crmHeaders()
		h["webhook-sender"] = "nobody"
		_, err := verify(v, h, crmBody, pdp.MessageRequirement{})
		wantReason(t, err, pdp.ReasonSignatureInvalid)
	})
	t.Run("sender not on route", func(t *testing.T) {
		_, err := verify(v, crmHeaders(), crmBody, pdp.MessageRequirement{Senders: []string{"billing"}})
		wantReason(t, err, pdp.ReasonSignatureInvalid)
	})
	t.Run("too many candidates", func(t *testing.T) {
		cfg := billingConfig()
		cfg.MaxCandidateSenders = 1
		v := newVerifier(t, cfg, frozen(now))
		_, err := verify(v, crmHeaders(), crmBody, pdp.MessageRequirement{})
		wantReason(t, err, pdp.ReasonSignatureInvalid)
	})
}

func TestCustomHeaderSet(t *testing.T) {
	cfg := message.Config{Senders: []message.Sender{{
		Name: "legacy", Keys: []message.Key{{ID: "k1", Secret: sw1Secret}},
		Headers: message.Headers{ID: "X-Msg-Id", Timestamp: "x-msg-timestamp", Signature: "x-msg-signature"},
	}}}
	v := newVerifier(t, cfg, frozen(sw1Timestamp))
	h := map[string]string{"x-msg-id": sw1ID, "x-msg-timestamp": "1614265330", "x-msg-signature": sw1Signature}
	if _, err := verify(v, h, sw1Body, pdp.MessageRequirement{}); err != nil {
		t.Fatalf("Verify with custom headers: %v", err)
	}
	_, err := verify(v, headers(sw1ID, sw1Timestamp, sw1Signature), sw1Body, pdp.MessageRequirement{})
	wantReason(t, err, pdp.ReasonSignatureMissing)
}
