package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/authgate/pdp/pdp"
)

// exportedSpan holds the fields of a span as the stdout exporter writes it.
type exportedSpan struct {
	Name        string
	SpanContext struct {
		TraceID string
		SpanID  string
	}
	Parent struct {
		TraceID string
		SpanID  string
	}
}

func decodeSpans(t *testing.T, out []byte) []exportedSpan {
	t.Helper()
	var spans []exportedSpan
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var s exportedSpan
		err := dec.Decode(&s)
		if errors.Is(err, io.EOF) {
			return spans
		}
		if err != nil {
			t.Fatalf("decode exported spans: %v\noutput: %s", err, out)
		}
		spans = append(spans, s)
	}
}

func TestTracingStdoutOneDecision(t *testing.T) {
	const (
		callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerSpanID  = "00f067aa0ba902b7"
	)
	var out bytes.Buffer
	ctx := context.Background()
	tp, shutdown, err := NewTracerProvider(ctx, TracingConfig{Exporter: ExporterStdout},
		TracingOptions{Instance: "pdp-test", Stdout: &out})
	if err != nil {
		t.Fatalf("NewTracerProvider: %v", err)
	}
	obs := NewObserver(nil, tp)
	engine, aud := newTestEngine(t, obs)

	header := http.Header{}
	header.Set("Traceparent", "00-"+callerTraceID+"-"+callerSpanID+"-01")
	req := callbackRequest("msg-trace")
	d := engine.Decide(ExtractHTTP(ctx, header), req)
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	if !d.Allow {
		t.Fatalf("decision reason %q, want allow", d.Reason)
	}
	if got := aud.last().TraceID; got != callerTraceID {
		t.Errorf("audit TraceID = %q, want the caller's %q", got, callerTraceID)
	}

	spans := decodeSpans(t, out.Bytes())
	byName := map[string]exportedSpan{}
	for _, s := range spans {
		if _, dup := byName[s.Name]; dup {
			t.Errorf("span %q exported twice", s.Name)
		}
		byName[s.Name] = s
		if s.SpanContext.TraceID != callerTraceID {
			t.Errorf("span %q trace id = %q, want %q", s.Name, s.SpanContext.TraceID, callerTraceID)
		}
	}
	decision, ok := byName[spanDecision]
	if !ok {
		t.Fatalf("no %q span among %d exported", spanDecision, len(spans))
	}
	if decision.Parent.SpanID != callerSpanID {
		t.Errorf("decision span parent = %q, want the caller's span %q",
			decision.Parent.SpanID, callerSpanID)
	}
	steps := []string{pdp.StepAuthenticate, pdp.StepVerify, pdp.StepReplay, pdp.StepPolicy,
		pdp.StepAudit}
	for _, step := range steps {
		s, ok := byName[spanStepPrefix+step]
		if !ok {
			t.Errorf("no span for step %q", step)
			continue
		}
		if s.Parent.SpanID != decision.SpanContext.SpanID {
			t.Errorf("step %q parent = %q, want the decision span %q",
				step, s.Parent.SpanID, decision.SpanContext.SpanID)
		}
	}
	if want := 1 + len(steps); len(spans) != want {
		t.Errorf("exported %d spans, want %d", len(spans), want)
	}
}

func TestTracingNoneKeepsCallerTraceID(t *testing.T) {
	ctx := context.Background()
	tp, shutdown, err := NewTracerProvider(ctx, TracingConfig{}, TracingOptions{})
	if err != nil {
		t.Fatalf("NewTracerProvider: %v", err)
	}
	defer shutdown(ctx)
	obs := NewObserver(nil, tp)

	dctx, end := obs.StartDecision(ExtractFromHeaders(ctx, map[string]string{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
	}), pdp.FrontDoorEnvoyGRPC)
	defer end()
	if got := TraceID(dctx); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("TraceID with exporter none = %q, want the caller's", got)
	}
}

func TestTracingConfigValidate(t *testing.T) {
	half, two := 0.5, 2.0
	cases := []struct {
		name    string
		cfg     TracingConfig
		wantErr bool
	}{
		{"zero value", TracingConfig{}, false},
		{"stdout", TracingConfig{Exporter: ExporterStdout, SampleRatio: &half}, false},
		{"otlp grpc", TracingConfig{Exporter: ExporterOTLPGRPC, Endpoint: "127.0.0.1:4317"}, false},
		{"otlp http", TracingConfig{Exporter: ExporterOTLPHTTP, Endpoint: "[::1]:4318"}, false},
		{"otlp without endpoint", TracingConfig{Exporter: ExporterOTLPGRPC}, true},
		{"endpoint without port", TracingConfig{Exporter: ExporterOTLPHTTP, Endpoint: "localhost"}, true},
		{"endpoint with url", TracingConfig{Exporter: ExporterOTLPHTTP,
			Endpoint: "http://127.0.0.1:4318/v1/traces"}, true},
		{"endpoint without otlp", TracingConfig{Endpoint: "127.0.0.1:4317"}, true},
		{"unknown exporter", TracingConfig{Exporter: "jaeger"}, true},
		{"ratio above one", TracingConfig{SampleRatio: &two}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}
