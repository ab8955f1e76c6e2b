package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/authgate/pdp/api"
	"github.com/authgate/pdp/telemetry"
)

// tracerShutdownTimeout bounds the flush of buffered spans at stop.
const tracerShutdownTimeout = 5 * time.Second

// buildTelemetry sets up the Prometheus registry with the PDP's metric
// families, the tracer provider the configuration selects, and the limits
// that the HTTP and gRPC listeners share.
func (a *app) buildTelemetry(ctx context.Context) error {
	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var err error
	a.metrics, err = telemetry.NewMetrics(a.registry)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}

	tp, shutdown, err := telemetry.NewTracerProvider(ctx, a.cfg.Tracing, telemetry.TracingOptions{
		ServiceName: "pdp", Instance: a.cfg.Instance, Version: version,
	})
	if err != nil {
		return err
	}
	a.onClose(func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), tracerShutdownTimeout)
		defer cancel()
		if err := shutdown(flushCtx); err != nil {
			a.log.Warn("tracer shutdown failed", "error", err)
		}
	})
	a.observer = telemetry.NewObserver(a.metrics, tp)

	a.limits = api.NewLimits(a.cfg.Limits, api.LimitsOptions{
		Logger: a.log, OnReject: a.metrics.LimitRejected,
	})
	return nil
}
