package telemetry

import (
	"context"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

// Size caps for the W3C trace context headers. A version-00 traceparent is
// 55 bytes, and W3C Trace Context recommends that vendors propagate at
// least 512 characters of tracestate. Longer values are ignored, so a
// caller cannot make the PDP parse or re-export large headers.
const (
	maxTraceparentBytes = 256
	maxTracestateBytes  = 4096
)

const (
	headerTraceparent = "traceparent"
	headerTracestate  = "tracestate"
)

// traceContext is the only propagator used: W3C traceparent and tracestate.
var traceContext = propagation.TraceContext{}

// headerCarrier is a read-only propagation.TextMapCarrier over a header
// lookup that caps the size of the trace context values.
type headerCarrier func(name string) string

func (c headerCarrier) Get(key string) string {
	v := c(key)
	switch key {
	case headerTraceparent:
		if len(v) > maxTraceparentBytes {
			return ""
		}
	case headerTracestate:
		if len(v) > maxTracestateBytes {
			return ""
		}
	}
	return v
}

// Set does nothing: the carrier only reads incoming headers.
func (c headerCarrier) Set(string, string) {}

func (c headerCarrier) Keys() []string {
	return []string{headerTraceparent, headerTracestate}
}

// ExtractFromHeaders returns ctx with the remote span context read from
// the traceparent and tracestate entries of headers, for example the
// headers of an Envoy CheckRequest. Names match case-insensitively. It
// returns ctx unchanged when headers carry no valid traceparent.
func ExtractFromHeaders(ctx context.Context, headers map[string]string) context.Context {
	return traceContext.Extract(ctx, headerCarrier(func(name string) string {
		if v, ok := headers[name]; ok {
			return v
		}
		for k, v := range headers {
			if strings.EqualFold(k, name) {
				return v
			}
		}
		return ""
	}))
}

// ExtractHTTP returns ctx with the remote span context read from an HTTP
// request's headers, or ctx unchanged when they carry none. Repeated
// traceparent headers are ambiguous, so they are ignored.
func ExtractHTTP(ctx context.Context, h http.Header) context.Context {
	return traceContext.Extract(ctx, headerCarrier(func(name string) string {
		values := h.Values(name)
		if len(values) != 1 {
			return ""
		}
		return values[0]
	}))
}

// ExtractGRPC returns ctx with the remote span context read from the
// incoming gRPC metadata, or ctx unchanged when it carries none.
//
// For Envoy's ext_authz call, the metadata carries Envoy's own span (when
// Envoy tracing is on) and the CheckRequest headers carry the original
// client's. Call ExtractFromHeaders on the CheckRequest headers first and
// ExtractGRPC second, so Envoy's span becomes the parent when it exists.
func ExtractGRPC(ctx context.Context) context.Context {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ctx
	}
	return traceContext.Extract(ctx, headerCarrier(func(name string) string {
		values := md.Get(name)
		if len(values) != 1 {
			return ""
		}
		return values[0]
	}))
}

// TraceID returns the W3C trace id (32 lower-case hex digits) of the span
// or remote span context in ctx, or "" when there is none. Front doors
// copy it to pdp.Request.TraceID so the audit record names the trace.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.TraceID().IsValid() {
		return ""
	}
	return sc.TraceID().String()
}
