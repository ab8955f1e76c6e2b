package pdp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"go.opentelemetry.io/otel/trace"
)

// DefaultPolicyTimeout bounds one policy evaluation when Options leaves it 0.
const DefaultPolicyTimeout = 500 * time.Millisecond

// Steps of the decision pipeline, as named in traces and metrics.
const (
	StepAuthenticate = "authenticate"
	StepVerify       = "verify"
	StepReplay       = "replay"
	StepPolicy       = "policy"
	StepAudit        = "audit"
)

// Options wires an Engine. Policies and Auditor are required; the other
// checks are needed only by routes that use them.
type Options struct {
	Policies      PolicySource
	Auditor       Auditor
	Authenticator Authenticator
	Messages      MessageVerifier
	Replay        ReplayStore
	Observer      Observer

	// Routes are tried in order; the first match selects the checks.
	Routes []Route
	// DefaultRoute applies when no route matches; nil denies such requests
	// with route.unmatched.
	DefaultRoute *Route

	// Instance names this replica in inputs and audit records.
	Instance string
	// PolicyTimeout bounds one evaluation; 0 means DefaultPolicyTimeout.
	PolicyTimeout time.Duration
	Logger        *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Engine runs the decision pipeline. It is safe for concurrent use.
type Engine struct {
	opts    Options
	log     *slog.Logger
	limiter logLimiter
}

// New validates opts and returns an Engine.
func New(opts Options) (*Engine, error) {
	var errs []error
	if opts.Policies == nil {
		errs = append(errs, errors.New("pdp: a policy source is required"))
	}
	if opts.Auditor == nil {
		errs = append(errs, errors.New("pdp: an auditor is required"))
	}
	for _, r := range opts.Routes {
		errs = append(errs, r.Validate())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.PolicyTimeout <= 0 {
		opts.PolicyTimeout = DefaultPolicyTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	return &Engine{opts: opts, log: opts.Logger}, nil
}

// decisionState carries one decision's facts through the pipeline.
type decisionState struct {
	id       string
	now      time.Time
	route    *Route
	target   ParsedTarget
	identity *Identity
	message  *Message
	revision string
	digest   string
}

// Decide decides one request. It always returns a well-formed Decision: a
// check that cannot be completed denies with its reason code, and the full
// error goes to the server log under the decision id. The decision is
// returned only after its audit record is written; if that fails, the
// decision is a deny with audit.unavailable.
func (e *Engine) Decide(ctx context.Context, req *Request) Decision {
	ctx, st, end := e.begin(ctx, req)
	d, err := e.evaluate(ctx, req, st)
	if err != nil {
		d = e.deny(st, ReasonOf(err, ReasonPolicyError))
		e.logDeny(ctx, st, d.Reason, err)
	}
	d = e.finish(ctx, req, st, d)
	end(&d)
	return d
}

// Reject records and returns a deny for a request that a front door could
// not turn into a Request (broken JSON, oversized body). req may hold
// whatever the front door managed to read.
func (e *Engine) Reject(ctx context.Context, req *Request, reason Reason, err error) Decision {
	ctx, st, end := e.begin(ctx, req)
	d := e.deny(st, reason)
	e.logDeny(ctx, st, reason, err)
	d = e.finish(ctx, req, st, d)
	end(&d)
	return d
}

// begin starts one decision: its id and time, the observer's decision span,
// and the trace id from ctx when the front door set none. The returned
// function reports the finished decision and ends the span.
func (e *Engine) begin(ctx context.Context, req *Request) (context.Context, *decisionState, func(*Decision)) {
	start := time.Now()
	frontDoor := ""
	if req != nil {
		frontDoor = req.FrontDoor
	}
	ctx, endSpan := e.opts.Observer.StartDecision(ctx, frontDoor)
	if req != nil && req.TraceID == "" {
		if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
			req.TraceID = sc.TraceID().String()
		}
	}
	st := &decisionState{id: NewDecisionID(), now: e.opts.Now()}
	return ctx, st, func(d *Decision) {
		e.opts.Observer.DecisionDone(ctx, req, d, time.Since(start))
		endSpan()
	}
}

func (e *Engine) evaluate(ctx context.Context, req *Request, st *decisionState) (Decision, error) {
	if err := e.route(req, st); err != nil {
		return Decision{}, err
	}
	if err := e.step(ctx, StepAuthenticate, func(ctx context.Context) error {
		return e.authenticate(ctx, req, st)
	}); err != nil {
		return Decision{}, err
	}
	if err := e.step(ctx, StepVerify, func(ctx context.Context) error {
		return e.verifyMessage(ctx, req, st)
	}); err != nil {
		return Decision{}, err
	}
	if err := e.step(ctx, StepReplay, func(ctx context.Context) error {
		return e.checkReplay(ctx, st)
	}); err != nil {
		return Decision{}, err
	}

	var d Decision
	err := e.step(ctx, StepPolicy, func(ctx context.Context) error {
		var err error
		d, err = e.evalPolicy(ctx, req, st)
		return err
	})
	return d, err
}

// step runs one pipeline step under the observer.
func (e *Engine) step(ctx context.Context, name string, fn func(context.Context) error) error {
	ctx, done := e.opts.Observer.StartStep(ctx, name)
	err := fn(ctx)
	done(ReasonOf(err, ""))
	return err
}

func (e *Engine) route(req *Request, st *decisionState) error {
	host, method, rawPath := "", req.Action.Name, ""
	if req.HTTP != nil {
		host, method, rawPath = req.HTTP.Host, req.HTTP.Method, req.HTTP.Path
		target, err := ParseTarget(rawPath)
		if err != nil {
			return Deny(ReasonRequestInvalid, err)
		}
		st.target = target
	}
	for i := range e.opts.Routes {
		if e.opts.Routes[i].matches(host, method, st.target.Segments) {
			st.route = &e.opts.Routes[i]
			return nil
		}
	}
	if e.opts.DefaultRoute == nil {
		// The normalized path, without the query, which may carry
		// credentials (access_token=...).
		return Denyf(ReasonRouteUnmatched, "no route for %s %s %q", method, host, st.target.Path())
	}
	st.route = e.opts.DefaultRoute
	return nil
}

func (e *Engine) evalPolicy(ctx context.Context, req *Request, st *decisionState) (Decision, error) {
	policy := e.opts.Policies.Active()
	if policy == nil {
		return Decision{}, Deny(ReasonNoPolicy, errors.New("no active bundle"))
	}
	st.revision = policy.Revision()

	input, err := buildInput(req, inputFacts{
		decisionID: st.id, instance: e.opts.Instance, revision: st.revision,
		route: st.route.Name, now: st.now, target: st.target,
		identity: st.identity, message: st.message,
	})
	if err != nil {
		return Decision{}, err
	}
	value, err := ast.InterfaceToValue(input)
	if err != nil {
		return Decision{}, Deny(ReasonRequestInvalid, fmt.Errorf("convert input: %w", err))
	}
	st.digest = digestValue(value)

	evalCtx, cancel := context.WithTimeout(ctx, e.opts.PolicyTimeout)
	defer cancel()
	result, defined, err := policy.Eval(evalCtx, value)
	if err != nil {
		// The caller's own deadline (the total decision deadline) is a
		// timeout; the policy timeout and evaluation failures are errors.
		if ctx.Err() != nil {
			return Decision{}, Deny(ReasonTimeout, err)
		}
		return Decision{}, Deny(ReasonPolicyError, err)
	}
	d := Decision{ID: st.id, BundleRevision: st.revision, Result: result}
	if !defined {
		return d, e.policyDeny(&d)
	}
	if err := applyResult(&d, result); err != nil {
		return Decision{}, Deny(ReasonPolicyError, err)
	}
	return d, e.policyDeny(&d)
}

// policyDeny completes the reason and status of a policy outcome.
func (e *Engine) policyDeny(d *Decision) error {
	if d.Allow {
		d.Reason = ReasonAllowed
		if d.HTTPStatus == 0 {
			d.HTTPStatus = ReasonAllowed.HTTPStatus()
		}
		return nil
	}
	d.Reason = ReasonPolicyDenied
	if d.HTTPStatus == 0 {
		d.HTTPStatus = ReasonPolicyDenied.HTTPStatus()
	}
	return nil
}

func (e *Engine) deny(st *decisionState, reason Reason) Decision {
	return Decision{
		ID: st.id, Reason: reason, HTTPStatus: reason.HTTPStatus(),
		BundleRevision: st.revision, Identity: st.identity, Message: st.message,
	}
}

// finish writes the audit record and completes the decision.
func (e *Engine) finish(ctx context.Context, req *Request, st *decisionState, d Decision) Decision {
	d.ID = st.id
	d.Identity, d.Message = st.identity, st.message
	if d.BundleRevision == "" {
		d.BundleRevision = st.revision
	}

	// The record is written even when the caller has gone away, so every
	// returned or abandoned decision leaves a trace.
	auditCtx := context.WithoutCancel(ctx)
	err := e.step(auditCtx, StepAudit, func(ctx context.Context) error {
		return e.opts.Auditor.Record(ctx, auditEvent(req, st, &d))
	})
	if err != nil {
		e.logLimited(ctx, slog.LevelError, "audit record failed", "audit",
			"decision_id", st.id, "error", err)
		d = e.deny(st, ReasonAuditUnavailable)
	}
	if !d.Allow {
		if d.Headers == nil {
			d.Headers = Headers{}
		}
		d.Headers.Set("x-pdp-reason", string(d.Reason))
		d.Headers.Set("x-pdp-decision-id", st.id)
		if challenge := bearerChallenge(d.Reason); challenge != "" {
			d.Headers.Set("www-authenticate", challenge)
		}
	}
	return d
}

// bearerChallenge returns the WWW-Authenticate value for a token failure
// (RFC 6750 section 3): no error code when the token is missing, and
// invalid_token when it was rejected. It returns "" for other reasons.
func bearerChallenge(reason Reason) string {
	switch reason {
	case ReasonTokenMissing:
		return `Bearer realm="pdp"`
	case ReasonTokenInvalid, ReasonTokenExpired, ReasonTokenRevoked:
		return `Bearer realm="pdp", error="invalid_token"`
	}
	return ""
}

func (e *Engine) logDeny(ctx context.Context, st *decisionState, reason Reason, err error) {
	level := slog.LevelDebug
	switch reason {
	case ReasonPolicyError, ReasonStateUnavailable, ReasonNoPolicy, ReasonAuditUnavailable:
		level = slog.LevelWarn
	}
	e.logLimited(ctx, level, "decision denied", string(reason),
		"decision_id", st.id, "reason", string(reason), "error", err)
}

// logLimited logs msg at level unless lines with the same key exceeded
// their burst; those are logged at Debug instead.
func (e *Engine) logLimited(ctx context.Context, level slog.Level, msg, key string, attrs ...any) {
	if level > slog.LevelDebug {
		ok, suppressed := e.limiter.allow(key, time.Now())
		if !ok {
			level = slog.LevelDebug
		}
		if suppressed > 0 {
			attrs = append(attrs, "suppressed", suppressed)
		}
	}
	e.log.Log(ctx, level, msg, attrs...)
}

func auditEvent(req *Request, st *decisionState, d *Decision) *AuditEvent {
	ev := &AuditEvent{
		DecisionID: st.id, Time: st.now, Allow: d.Allow, Reason: d.Reason,
		HTTPStatus: d.HTTPStatus, BundleRevision: d.BundleRevision, InputDigest: st.digest,
	}
	if st.route != nil {
		ev.Route = st.route.Name
	}
	if req == nil {
		return ev
	}
	ev.FrontDoor, ev.TraceID = req.FrontDoor, req.TraceID
	ev.Action, ev.Resource = req.Action.Name, req.Resource.ID
	ev.Subject = req.Subject.ID
	if req.HTTP != nil {
		ev.Action, ev.Resource = req.HTTP.Method, st.target.Path()
	}
	if id := st.identity; id != nil {
		ev.Subject, ev.Issuer, ev.SpiffeID, ev.Tenant = id.Subject, id.Issuer, id.SpiffeID, id.Tenant
	}
	if m := st.message; m != nil {
		ev.MessageID, ev.Sender = m.ID, m.Sender
		ev.Sequence, ev.HasSequence = m.Sequence, m.HasSequence
		if ev.Tenant == "" {
			ev.Tenant = m.Tenant
		}
	}
	return ev
}

// digestValue returns the hex SHA-256 of the input's Rego text form, in
// which OPA writes object keys in sorted order, so equal inputs have equal
// digests.
func digestValue(input ast.Value) string {
	sum := sha256.Sum256([]byte(input.String()))
	return hex.EncodeToString(sum[:])
}

// NewDecisionID returns a new, time-ordered decision id (a ULID).
func NewDecisionID() string {
	return ulid.Make().String()
}
