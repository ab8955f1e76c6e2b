package telemetry

import (
	"context"
	"errors"
	"github.com/open-policy-agent/opa/v1/ast"
	"sync"
	"testing"

	"github.com/authgate/pdp/pdp"
)

// These helpers build a real pdp.Engine with in-test dependencies, so the
// telemetry tests observe the engine's actual steps.

// pathPolicy allows every request whose path has no "deny" segment.
type pathPolicy struct{}

func (pathPolicy) Revision() string { return "rev-test" }

func (pathPolicy) Eval(_ context.Context, input ast.Value) (any, bool, error) {
	segments, _ := input.Find(ast.Ref{ast.StringTerm("parsed_path")})
	denied := false
	if arr, ok := segments.(*ast.Array); ok {
		arr.Foreach(func(t *ast.Term) {
			denied = denied || t.Equal(ast.StringTerm("deny"))
		})
	}
	return !denied, true, nil
}

func (pathPolicy) Query(context.Context, string, any) (any, bool, error) {
	return nil, false, nil
}

type staticSource struct{ policy pdp.Policy }

func (s staticSource) Active() pdp.Policy { return s.policy }

// memoryAuditor keeps audit events in memory.
type memoryAuditor struct {
	mu     sync.Mutex
	events []*pdp.AuditEvent
}

func (a *memoryAuditor) Record(_ context.Context, ev *pdp.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
	return nil
}

func (a *memoryAuditor) last() *pdp.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.events) == 0 {
		return nil
	}
	return a.events[len(a.events)-1]
}

// headerVerifier accepts every message and takes its id from the
// webhook-id header.
type headerVerifier struct{}

func (headerVerifier) Verify(_ context.Context, msg *pdp.SignedMessage,
	_ pdp.MessageRequirement) (*pdp.Message, error) {
	return &pdp.Message{Verified: true, ID: msg.Headers["webhook-id"], Sender: "billing",
		Timestamp: 1}, nil
}

// seenReplay rejects a message id it has already seen.
type seenReplay struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (s *seenReplay) Check(_ context.Context, c pdp.ReplayCheck) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[c.Nonce] {
		return pdp.Deny(pdp.ReasonNonceReused, errors.New("nonce already seen"))
	}
	s.seen[c.Nonce] = true
	return nil
}

// newTestEngine returns an engine with a callback route that needs a
// signed message and a catch-all route, observed by obs.
func newTestEngine(t *testing.T, obs pdp.Observer) (*pdp.Engine, *memoryAuditor) {
	t.Helper()
	aud := &memoryAuditor{}
	e, err := pdp.New(pdp.Options{
		Policies: staticSource{pathPolicy{}},
		Auditor:  aud,
		Messages: headerVerifier{},
		Replay:   &seenReplay{seen: map[string]bool{}},
		Observer: obs,
		Routes: []pdp.Route{
			{Name: "callbacks", Paths: []string{"/callbacks/**"},
				Message: pdp.MessageRequirement{Required: true}},
			{Name: "all"},
		},
		Instance: "pdp-test",
	})
	if err != nil {
		t.Fatalf("pdp.New: %v", err)
	}
	return e, aud
}

func httpRequest(frontDoor, method, path string) *pdp.Request {
	return &pdp.Request{FrontDoor: frontDoor, HTTP: &pdp.HTTPRequest{
		Method: method, Path: path, Headers: map[string]string{}, Size: -1,
	}}
}

func callbackRequest(messageID string) *pdp.Request {
	req := httpRequest(pdp.FrontDoorEnvoyGRPC, "POST", "/callbacks/payments")
	req.Message = &pdp.SignedMessage{
		Headers: map[string]string{"webhook-id": messageID},
		Body:    []byte(`{"event":"payment.settled"}`),
	}
	return req
}
