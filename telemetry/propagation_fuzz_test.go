package telemetry

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// FuzzExtractFromHeaders feeds arbitrary traceparent and tracestate values
// through every extraction path. A trace id, when one comes out, must be
// 32 lower-case hex digits, not all zero, and must appear in the input.
func FuzzExtractFromHeaders(f *testing.F) {
	f.Add(testTraceparent, "")
	f.Add(testTraceparent, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
	f.Add("01-"+testTraceID+"-00f067aa0ba902b7-01-extra", "a=b")
	f.Add("00-"+testTraceID+"-0000000000000000-01", "")
	f.Add("ff-"+testTraceID+"-00f067aa0ba902b7-01", "")
	f.Add("00--", "=,=,=")
	f.Fuzz(func(t *testing.T, traceparent, tracestate string) {
		headers := map[string]string{"traceparent": traceparent, "tracestate": tracestate}
		h := http.Header{}
		h.Set("traceparent", traceparent)
		h.Set("tracestate", tracestate)

		for _, ctx := range []context.Context{
			ExtractFromHeaders(context.Background(), headers),
			ExtractHTTP(context.Background(), h),
		} {
			id := TraceID(ctx)
			if id == "" {
				continue
			}
			if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" ||
				id == strings.Repeat("0", 32) {
				t.Fatalf("TraceID %q is not a valid W3C trace id", id)
			}
			if !strings.Contains(traceparent, id) {
				t.Fatalf("TraceID %q does not come from traceparent %q", id, traceparent)
			}
		}
	})
}
