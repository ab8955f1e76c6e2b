package pdp

import (
	"context"
	"time"
)

// Observer receives timing of pipeline steps and finished decisions, for
// metrics and tracing. Implementations must be safe for concurrent use.
type Observer interface {
	// StartDecision begins a decision of the named front door; the returned
	// function ends it and is called once, after DecisionDone.
	StartDecision(ctx context.Context, frontDoor string) (context.Context, func())
	// StartStep begins a step; the returned function ends it with the step's
	// reason code, empty when the step passed.
	StartStep(ctx context.Context, step string) (context.Context, func(reason Reason))
	// DecisionDone is called once per decision after its audit record.
	DecisionDone(ctx context.Context, req *Request, d *Decision, elapsed time.Duration)
}

type nopObserver struct{}

func (nopObserver) StartDecision(ctx context.Context, _ string) (context.Context, func()) {
	return ctx, func() {}
}

func (nopObserver) StartStep(ctx context.Context, _ string) (context.Context, func(Reason)) {
	return ctx, func(Reason) {}
}

func (nopObserver) DecisionDone(context.Context, *Request, *Decision, time.Duration) {}
