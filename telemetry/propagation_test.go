package telemetry

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
)

const (
	testTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	testTraceparent = "00-" + testTraceID + "-00f067aa0ba902b7-01"
)

func TestExtractFromHeaders(t *testing.T) {
	cases := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"lower-case name", map[string]string{"traceparent": testTraceparent}, testTraceID},
		{"mixed-case name", map[string]string{"TraceParent": testTraceparent}, testTraceID},
		{"missing", map[string]string{"x-request-id": "1"}, ""},
		{"all-zero trace id", map[string]string{
			"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, ""},
		{"upper-case hex", map[string]string{"traceparent": strings.ToUpper(testTraceparent)}, ""},
		{"oversized", map[string]string{
			"traceparent": testTraceparent + "-" + strings.Repeat("a", maxTraceparentBytes)}, ""},
		{"oversized tracestate keeps parent", map[string]string{
			"traceparent": testTraceparent,
			"tracestate":  "a=" + strings.Repeat("b", maxTracestateBytes)}, testTraceID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ExtractFromHeaders(context.Background(), tc.headers)
			if got := TraceID(ctx); got != tc.want {
				t.Errorf("TraceID = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestExtractHTTPRepeatedHeaderIgnored(t *testing.T) {
	h := http.Header{}
	h.Add("traceparent", testTraceparent)
	if got := TraceID(ExtractHTTP(context.Background(), h)); got != testTraceID {
		t.Fatalf("one traceparent: TraceID = %q, want %q", got, testTraceID)
	}
	h.Add("traceparent", "00-11111111111111111111111111111111-00f067aa0ba902b7-01")
	if got := TraceID(ExtractHTTP(context.Background(), h)); got != "" {
		t.Errorf("two traceparent headers: TraceID = %q, want none", got)
	}
}

func TestExtractGRPCMetadata(t *testing.T) {
	md := metadata.Pairs("traceparent", testTraceparent)
	ctx := metadata.NewIncomingContext(context.Background(), md)
	if got := TraceID(ExtractGRPC(ctx)); got != testTraceID {
		t.Errorf("TraceID = %q, want %q", got, testTraceID)
	}
	if got := TraceID(ExtractGRPC(context.Background())); got != "" {
		t.Errorf("without metadata: TraceID = %q, want none", got)
	}
}

func TestExtractGRPCOverridesCheckHeaders(t *testing.T) {
	const envoyTraceID = "11111111111111111111111111111111"
	md := metadata.Pairs("traceparent", "00-"+envoyTraceID+"-00f067aa0ba902b7-01")
	ctx := metadata.NewIncomingContext(context.Background(), md)
	ctx = ExtractFromHeaders(ctx, map[string]string{"traceparent": testTraceparent})
	if got := TraceID(ExtractGRPC(ctx)); got != envoyTraceID {
		t.Errorf("TraceID = %q, want Envoy's %q from the gRPC metadata", got, envoyTraceID)
	}
}
