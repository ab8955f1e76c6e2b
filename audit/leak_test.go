package audit_test

import (
	"context"
	"github.com/open-policy-agent/opa/v1/ast"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authgate/pdp/audit"
	"github.com/authgate/pdp/pdp"
)

// Markers placed in every credential, signature and body the engine sees.
// None may reach an audit file; the subject marker must.
const (
	tokenMarker     = "TOKEN-MARKER-7f3a"
	signatureMarker = "SIGNATURE-MARKER-91c2"
	bodyMarker      = "BODY-MARKER-55d0"
	secretMarker    = "SECRET-MARKER-c0de"
	subjectMarker   = "SUBJECT-MARKER-e11a"
)

type allowPolicy struct{}

func (allowPolicy) Revision() string { return "rev-1" }
func (allowPolicy) Eval(context.Context, ast.Value) (any, bool, error) {
	return true, true, nil
}
func (allowPolicy) Query(context.Context, string, any) (any, bool, error) {
	return true, true, nil
}

type policySource struct{}

func (policySource) Active() pdp.Policy { return allowPolicy{} }

type tokenAuth struct{}

func (tokenAuth) VerifyToken(_ context.Context, token string, _ []string) (*pdp.Identity, error) {
	return &pdp.Identity{
		Verified: true, Method: "jwt", Issuer: "https://idp.example.test",
		Subject: subjectMarker, Tenant: "t-42", TokenID: "jti-1",
		Claims: map[string]any{"raw": token, "secret": secretMarker},
	}, nil
}

func (tokenAuth) VerifyPeer(context.Context, *pdp.Peer) (*pdp.Identity, error) {
	return nil, nil
}

type messages struct{}

func (messages) Verify(_ context.Context, m *pdp.SignedMessage, _ pdp.MessageRequirement) (*pdp.Message, error) {
	return &pdp.Message{Verified: true, ID: "msg-1", Sender: "billing", Timestamp: 1764849600,
		Sequence: 7, HasSequence: true, Scope: "payments:notify"}, nil
}

type freshReplay struct{}

func (freshReplay) Check(context.Context, pdp.ReplayCheck) error { return nil }

func TestAuditFilesHoldNoSecrets(t *testing.T) {
	root := t.TempDir()
	cfg := audit.Config{Dir: filepath.Join(root, "audit"), CheckpointEvery: 2}
	l, err := audit.Open(cfg, audit.Options{Instance: "pdp-leak"})
	if err != nil {
		t.Fatal(err)
	}
	route := pdp.Route{Name: "callbacks",
		Token:   pdp.TokenRequirement{Required: true},
		Message: pdp.MessageRequirement{Required: true}}
	engine, err := pdp.New(pdp.Options{
		Policies: policySource{}, Auditor: l, Authenticator: tokenAuth{},
		Messages: messages{}, Replay: freshReplay{}, Routes: []pdp.Route{route},
		Instance: "pdp-leak",
	})
	if err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 5; i++ {
		req := &pdp.Request{
			FrontDoor: pdp.FrontDoorEnvoyHTTP,
			Token:     "eyJhbGciOiJFZERTQSJ9." + tokenMarker + ".sig",
			HTTP: &pdp.HTTPRequest{
				Method: "POST", Host: "api.example.test", Path: "/callbacks/payments",
				Headers: map[string]string{
					"authorization": "Bearer " + tokenMarker,
					"cookie":        "session=" + secretMarker,
				},
				Body: []byte(`{"card":"` + bodyMarker + `"}`),
			},
			Message: &pdp.SignedMessage{
				Headers: map[string]string{"webhook-signature": "v1," + signatureMarker},
				Body:    []byte(bodyMarker),
			},
		}
		d := engine.Decide(context.Background(), req)
		if !d.Allow {
			t.Fatalf("decision %d = deny %s, want allow", i, d.Reason)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	var content strings.Builder
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(cfg.Dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		content.Write(data)
	}
	for _, marker := range []string{tokenMarker, signatureMarker, bodyMarker, secretMarker} {
		if strings.Contains(content.String(), marker) {
			t.Errorf("audit files contain %s", marker)
		}
	}
	if got := strings.Count(content.String(), subjectMarker); got != 5 {
		t.Errorf("subject written %d times, want 5", got)
	}
	if !strings.Contains(content.String(), `"message_id":"msg-1"`) {
		t.Error("message id missing from the audit records")
	}
}
