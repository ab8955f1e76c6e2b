package telemetry

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/authgate/pdp/pdp"
)

// TracerName is the instrumentation scope of every PDP span.
const TracerName = "github.com/authgate/pdp"

// Span names. Each step span is "pdp.step." followed by the step name.
const (
	spanDecision   = "pdp.decision"
	spanStepPrefix = "pdp.step."
)

// Span attribute keys.
const (
	attrFrontDoor  = attribute.Key("pdp.front_door")
	attrDecisionID = attribute.Key("pdp.decision_id")
	attrAllow      = attribute.Key("pdp.allow")
	attrReason     = attribute.Key("pdp.reason")
	attrRevision   = attribute.Key("pdp.bundle_revision")
	attrStep       = attribute.Key("pdp.step")
)

// failureReasons are the reason codes that mean the PDP could not decide
// properly, as opposed to a deny; their spans get an error status.
var failureReasons = map[pdp.Reason]bool{
	pdp.ReasonPolicyError:      true,
	pdp.ReasonNoPolicy:         true,
	pdp.ReasonStateUnavailable: true,
	pdp.ReasonAuditUnavailable: true,
	pdp.ReasonTimeout:          true,
	pdp.ReasonOverloaded:       true,
}

// Observer implements pdp.Observer with Prometheus metrics and
// OpenTelemetry spans. It is safe for concurrent use.
type Observer struct {
	metrics *Metrics
	tracer  trace.Tracer
}

var _ pdp.Observer = (*Observer)(nil)

// NewObserver returns an Observer that records into m and creates spans
// with tp. Either may be nil: a nil m records no metrics and a nil tp
// records no spans, though trace ids from callers still pass through.
func NewObserver(m *Metrics, tp trace.TracerProvider) *Observer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return &Observer{metrics: m, tracer: tp.Tracer(TracerName)}
}

// decisionKey is the context key of the running decision's state.
type decisionKey struct{}

// decisionRun is one decision between StartDecision and its end.
type decisionRun struct {
	span      trace.Span
	frontDoor string
	once      sync.Once
	metrics   *Metrics
}

func (r *decisionRun) end() {
	r.once.Do(func() {
		r.span.End()
		if r.metrics != nil {
			r.metrics.inFlight.WithLabelValues(r.frontDoor).Dec()
		}
	})
}

// StartDecision starts the decision span, a child of any remote span
// context already in ctx (see ExtractHTTP, ExtractGRPC and
// ExtractFromHeaders), and counts the decision as in flight. Front doors
// call it before Engine.Decide or Engine.Reject and pass the returned
// context on, so step spans become its children:
//
//	ctx, end := obs.StartDecision(telemetry.ExtractHTTP(ctx, r.Header), pdp.FrontDoorNGINX)
//	defer end()
//	req.TraceID = telemetry.TraceID(ctx)
//	d := engine.Decide(ctx, req)
//
// DecisionDone ends the span. The returned function ends it too and may be
// called any number of times. A deferred call of it therefore covers
// panics and Engine.Reject, which does not call DecisionDone.
func (o *Observer) StartDecision(ctx context.Context, frontDoor string) (context.Context, func()) {
	fd := frontDoorLabel(frontDoor)
	ctx, span := o.tracer.Start(ctx, spanDecision,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attrFrontDoor.String(fd)))
	run := &decisionRun{span: span, frontDoor: fd, metrics: o.metrics}
	if o.metrics != nil {
		o.metrics.inFlight.WithLabelValues(fd).Inc()
	}
	return context.WithValue(ctx, decisionKey{}, run), run.end
}

// StartStep starts a child span for one pipeline step. The returned
// function ends it and records the step's latency, and for the replay step
// a rejection when reason is not empty.
func (o *Observer) StartStep(ctx context.Context, step string) (context.Context, func(pdp.Reason)) {
	start := time.Now()
	ctx, span := o.tracer.Start(ctx, spanStepPrefix+step,
		trace.WithAttributes(attrStep.String(step)))
	return ctx, func(reason pdp.Reason) {
		if reason != "" {
			span.SetAttributes(attrReason.String(string(reason)))
			if failureReasons[reason] {
				span.SetStatus(codes.Error, string(reason))
			}
		}
		span.End()
		if o.metrics != nil {
			o.metrics.recordStep(step, reason, time.Since(start))
		}
	}
}

// DecisionDone counts the decision, records its latency and ends the
// decision span that StartDecision put in ctx, if any.
func (o *Observer) DecisionDone(ctx context.Context, req *pdp.Request, d *pdp.Decision,
	elapsed time.Duration) {
	frontDoor := ""
	if req != nil {
		frontDoor = req.FrontDoor
	}
	if o.metrics != nil {
		o.metrics.recordDecision(frontDoor, d, elapsed)
	}

	run, ok := ctx.Value(decisionKey{}).(*decisionRun)
	if !ok {
		return
	}
	run.span.SetAttributes(
		attrDecisionID.String(d.ID),
		attrAllow.Bool(d.Allow),
		attrReason.String(string(d.Reason)),
		attrRevision.String(d.BundleRevision),
	)
	if failureReasons[d.Reason] {
		run.span.SetStatus(codes.Error, string(d.Reason))
	}
	run.end()
}
