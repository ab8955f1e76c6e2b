package telemetry

import (
	"context"
	"fmt"
	"io"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracingOptions describe the process to the trace backend.
type TracingOptions struct {
	// ServiceName is the service.name resource attribute; default "pdp".
	ServiceName string
	// Instance is the service.instance.id resource attribute, the PDP's
	// instance name.
	Instance string
	// Version is the service.version resource attribute.
	Version string
	// Stdout receives spans for the stdout exporter; default os.Stdout.
	Stdout io.Writer
}

// NewTracerProvider builds the tracer provider that cfg selects and the
// function that flushes and stops it. With exporter none it returns a
// no-op provider, which records nothing and starts no goroutine. Call the
// shutdown function once, after the listeners have stopped, so the last
// spans are exported.
func NewTracerProvider(ctx context.Context, cfg TracingConfig,
	opts TracingOptions) (trace.TracerProvider, func(context.Context) error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	if cfg.exporter() == ExporterNone {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}

	exporter, err := newExporter(ctx, cfg, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: create %s exporter: %w", cfg.exporter(), err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(newResource(opts)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Ratio()))),
	)
	return tp, tp.Shutdown, nil
}

func newExporter(ctx context.Context, cfg TracingConfig,
	opts TracingOptions) (sdktrace.SpanExporter, error) {
	switch cfg.exporter() {
	case ExporterStdout:
		w := opts.Stdout
		if w == nil {
			w = os.Stdout
		}
		return stdouttrace.New(stdouttrace.WithWriter(w))
	case ExporterOTLPGRPC:
		grpcOpts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Endpoint)}
		if cfg.Insecure {
			grpcOpts = append(grpcOpts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, grpcOpts...)
	case ExporterOTLPHTTP:
		httpOpts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(cfg.Endpoint)}
		if cfg.Insecure {
			httpOpts = append(httpOpts, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, httpOpts...)
	}
	return nil, fmt.Errorf("unknown exporter %q", cfg.Exporter)
}

func newResource(opts TracingOptions) *resource.Resource {
	name := opts.ServiceName
	if name == "" {
		name = "pdp"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if opts.Instance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", opts.Instance))
	}
	if opts.Version != "" {
		attrs = append(attrs, attribute.String("service.version", opts.Version))
	}
	return resource.NewSchemaless(attrs...)
}
