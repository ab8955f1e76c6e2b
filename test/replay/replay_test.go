// Package replay runs signed messages through whole decision engines that
// share one replay store, end to end: verifier, replay store, policy and
// audit, against a real redis-server.
package replay

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"github.com/open-policy-agent/opa/v1/ast"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authgate/pdp/message"
	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/replaycache"
	"github.com/authgate/pdp/test/redisproc"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// allowAll is a policy whose decision is always allow.
type allowAll struct{}

func (allowAll) Revision() string { return "test-1" }

func (allowAll) Eval(context.Context, ast.Value) (any, bool, error) { return true, true, nil }

func (allowAll) Query(context.Context, string, any) (any, bool, error) { return true, true, nil }

type policySource struct{}

func (policySource) Active() pdp.Policy { return allowAll{} }

// auditLog keeps every audit event in memory.
type auditLog struct {
	mu     sync.Mutex
	events []*pdp.AuditEvent
}

func (a *auditLog) Record(_ context.Context, ev *pdp.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
	return nil
}

func (a *auditLog) last() *pdp.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.events[len(a.events)-1]
}

var route = pdp.Route{
	Name:    "payments-callback",
	Paths:   []string{"/callbacks/payments"},
	Message: pdp.MessageRequirement{Required: true, Senders: []string{"billing"}},
}

func newEngine(t *testing.T, clk *clock, store pdp.ReplayStore, audit *auditLog) *pdp.Engine {
	t.Helper()
	verifier, err := message.NewVerifier(message.Config{Senders: []message.Sender{{
		Name: "billing", Keys: []message.Key{{ID: "k1", Secret: secret}},
		Scopes: []string{"payments:notify"}, RequireSequence: true,
	}}}, message.Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	engine, err := pdp.New(pdp.Options{
		Policies: policySource{}, Auditor: audit, Messages: verifier, Replay: store,
		Routes: []pdp.Route{route}, Instance: "test", Now: clk.Now,
	})
	if err != nil {
		t.Fatalf("pdp.New: %v", err)
	}
	return engine
}

// request builds a signed callback request stamped now.
func request(clk *clock, id string, seq uint64) *pdp.Request {
	ts := clk.Now().Unix()
	body := fmt.Sprintf(`{"type":"payment.settled","sequence":%d,"scope":"payments:notify"}`, seq)
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.%s", id, ts, body)
	headers := map[string]string{
		"webhook-id":        id,
		"webhook-timestamp": strconv.FormatInt(ts, 10),
		"webhook-signature": "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		"content-type":      "application/json",
	}
	return &pdp.Request{
		FrontDoor: pdp.FrontDoorDirect,
		HTTP: &pdp.HTTPRequest{Method: "POST", Host: "api.example.test", Path: "/callbacks/payments",
			Headers: headers, Body: []byte(body), Size: int64(len(body))},
		Message: &pdp.SignedMessage{Headers: headers, Body: []byte(body)},
	}
}

func expect(t *testing.T, d pdp.Decision, want pdp.Reason) {
	t.Helper()
	if d.Reason != want {
		t.Fatalf("decision reason = %s, want %s", d.Reason, want)
	}
	if d.Allow != (want == pdp.ReasonAllowed) {
		t.Fatalf("decision allow = %v for reason %s", d.Allow, d.Reason)
	}
	if d.HTTPStatus != want.HTTPStatus() {
		t.Fatalf("decision status = %d, want %d", d.HTTPStatus, want.HTTPStatus())
	}
}

func TestTwoEnginesShareRedis(t *testing.T) {
	server := redisproc.Start(t)
	clk := &clock{now: time.Unix(1_764_849_600, 0)}
	newStore := func() replaycache.Store {
		s, err := replaycache.New(replaycache.Config{Backend: replaycache.BackendRedis,
			LostStateGuard: replaycache.GuardWindow,
			Redis:          replaycache.RedisConfig{Addrs: []string{server.Addr}, OpTimeout: time.Second}},
			replaycache.Options{Now: clk.Now})
		if err != nil {
			t.Fatalf("replaycache.New: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	auditA, auditB := &auditLog{}, &auditLog{}
	a := newEngine(t, clk, newStore(), auditA)
	b := newEngine(t, clk, newStore(), auditB)
	ctx := context.Background()

	// The sender is new to this Redis, so the lost-state guard denies first.
	expect(t, a.Decide(ctx, request(clk, "msg_warmup", 1)), pdp.ReasonStateUnavailable)
	clk.Advance(replaycache.DefaultFutureTolerance + time.Second)

	t.Run("fresh then replayed on the other engine", func(t *testing.T) {
		req := request(clk, "msg_1", 100)
		d := a.Decide(ctx, req)
		expect(t, d, pdp.ReasonAllowed)
		if d.Message == nil || d.Message.Replay != "fresh" || d.Message.Sequence != 100 {
			t.Fatalf("decision message = %+v, want replay fresh and sequence 100", d.Message)
		}
		expect(t, b.Decide(ctx, req), pdp.ReasonNonceReused)
		if ev := auditB.last(); ev.Reason != pdp.ReasonNonceReused || ev.MessageID != "msg_1" || ev.Sender != "billing" {
			t.Fatalf("audit event = %+v, want nonce reuse of msg_1 from billing", ev)
		}
	})
	t.Run("sequence reuse with a new id", func(t *testing.T) {
		expect(t, b.Decide(ctx, request(clk, "msg_2", 100)), pdp.ReasonSequenceRegressed)
	})
	t.Run("reordered inside window", func(t *testing.T) {
		expect(t, a.Decide(ctx, request(clk, "msg_3", 103)), pdp.ReasonAllowed)
		expect(t, b.Decide(ctx, request(clk, "msg_4", 101)), pdp.ReasonAllowed)
		expect(t, a.Decide(ctx, request(clk, "msg_5", 102)), pdp.ReasonAllowed)
	})
	t.Run("sequence jump", func(t *testing.T) {
		expect(t, a.Decide(ctx, request(clk, "msg_6", 103+replaycache.DefaultMaxSequenceJump+1)), pdp.ReasonSequenceRegressed)
	})
	t.Run("tampered body", func(t *testing.T) {
		req := request(clk, "msg_7", 104)
		req.Message.Body = []byte(strings.Replace(string(req.Message.Body), "104", "105", 1))
		expect(t, a.Decide(ctx, req), pdp.ReasonSignatureInvalid)
	})
	t.Run("missing signature", func(t *testing.T) {
		req := request(clk, "msg_8", 104)
		delete(req.Message.Headers, "webhook-signature")
		expect(t, a.Decide(ctx, req), pdp.ReasonSignatureMissing)
	})
	t.Run("no message", func(t *testing.T) {
		req := request(clk, "msg_9", 104)
		req.Message = nil
		expect(t, a.Decide(ctx, req), pdp.ReasonSignatureMissing)
	})
	t.Run("partial body", func(t *testing.T) {
		req := request(clk, "msg_10", 104)
		req.Message.Truncated = true
		expect(t, a.Decide(ctx, req), pdp.ReasonMessageInvalid)
	})
	t.Run("stale", func(t *testing.T) {
		req := request(clk, "msg_11", 104)
		clk.Advance(replaycache.DefaultPastTolerance)
		expect(t, a.Decide(ctx, req), pdp.ReasonMessageStale)
	})
	t.Run("redis down then back", func(t *testing.T) {
		req := request(clk, "msg_12", 110)
		expect(t, a.Decide(ctx, req), pdp.ReasonAllowed)
		server.Kill()
		expect(t, b.Decide(ctx, request(clk, "msg_13", 111)), pdp.ReasonStateUnavailable)
		server.Restart()
		clk.Advance(time.Second)
		// msg_12 is inside the window and Redis forgot it: still no replay.
		expect(t, b.Decide(ctx, req), pdp.ReasonStateUnavailable)
		clk.Advance(replaycache.DefaultFutureTolerance + time.Second)
		expect(t, b.Decide(ctx, request(clk, "msg_14", 112)), pdp.ReasonAllowed)
	})
}

func TestMemoryStoreEngine(t *testing.T) {
	clk := &clock{now: time.Unix(1_764_849_600, 0)}
	store, err := replaycache.New(replaycache.Config{}, replaycache.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	engine := newEngine(t, clk, store, &auditLog{})
	ctx := context.Background()
	clk.Advance(replaycache.DefaultFutureTolerance + time.Second)

	req := request(clk, "msg_1", 1)
	expect(t, engine.Decide(ctx, req), pdp.ReasonAllowed)
	expect(t, engine.Decide(ctx, req), pdp.ReasonNonceReused)
	expect(t, engine.Decide(ctx, request(clk, "msg_2", 1)), pdp.ReasonSequenceRegressed)
}
