package api

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Scrape limits of MetricsHandler. A scrape gathers every family once, so
// a few at a time are enough for Prometheus and several replicas of it.
const (
	metricsMaxInFlight = 4
	metricsTimeout     = 10 * time.Second
)

// MetricsHandler returns the handler for GET /metrics: the Prometheus text
// exposition of g, for example the registry given to telemetry.NewMetrics.
// The command mounts it on the admin listener, or on the HTTP listener
// when no admin listener is configured. Scrapes beyond metricsMaxInFlight
// at once get 503, and a family that fails to gather is logged and left
// out while the others are still served.
func MetricsHandler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: metricsMaxInFlight,
		Timeout:             metricsTimeout,
	})
}
