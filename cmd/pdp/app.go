package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/authgate/pdp/api"
	"github.com/authgate/pdp/audit"
	"github.com/authgate/pdp/bundles"
	"github.com/authgate/pdp/config"
	"github.com/authgate/pdp/identity"
	"github.com/authgate/pdp/message"
	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/policies"
	"github.com/authgate/pdp/replaycache"
	"github.com/authgate/pdp/telemetry"
)

// app holds the wired components of one serving process.
type app struct {
	cfg *config.Config
	log *slog.Logger

	registry *prometheus.Registry
	metrics  *telemetry.Metrics
	observer *telemetry.Observer
	limits   *api.Limits

	redis    redis.UniversalClient
	bundles  *bundles.Manager
	audit    *audit.Log
	identity *identity.Authenticator
	messages *message.Verifier
	replay   replaycache.Store
	engine   *pdp.Engine

	http   *api.Server
	grpc   *grpc.Server
	health *health.Server
	admin  *api.AdminServer

	closers []func()
}

// newApp builds every component from cfg and loads the first bundle. A
// broken bundle or configuration fails here, before any listener opens.
func newApp(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log}
	if err := a.build(ctx); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

func (a *app) build(ctx context.Context) error {
	steps := []func(context.Context) error{
		a.buildTelemetry, a.buildRedis, a.buildBundles, a.buildAudit, a.buildChecks,
		a.buildEngine, a.buildServers,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) buildBundles(ctx context.Context) error {
	var err error
	memory := newMemoryTuner(a.cfg.Memory, a.log)
	a.bundles, err = bundles.NewManager(a.cfg.Bundle, bundles.Options{
		Logger: a.log, Embedded: policies.Bundle,
		OnActivate: func(revision string, err error) {
			a.metrics.BundleActivated(revision, err)
			memory.bundleActivated(revision, err)
		},
	})
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := a.bundles.Start(ctx); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := a.registerCacheMetrics(); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	a.onClose(a.bundles.Stop)
	return nil
}

// registerCacheMetrics exports the decision cache's hit and miss counts.
func (a *app) registerCacheMetrics() error {
	if err := a.metrics.RegisterCounterFunc("decision_cache_hits_total",
		"Policy results served from the decision cache.", func() float64 {
			hits, _ := a.bundles.DecisionCacheStats()
			return float64(hits)
		}); err != nil {
		return err
	}
	return a.metrics.RegisterCounterFunc("decision_cache_misses_total",
		"Policy evaluations whose result was then cached.", func() float64 {
			_, misses := a.bundles.DecisionCacheStats()
			return float64(misses)
		})
}

func (a *app) buildAudit(context.Context) error {
	var err error
	a.audit, err = audit.Open(a.cfg.Audit, audit.Options{
		Instance: a.cfg.Instance, Logger: a.log, Redis: a.redis, OnFsync: a.metrics.AuditFsync,
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := a.metrics.RegisterAuditQueueDepth(a.audit.QueueDepth); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	a.onClose(func() {
		if err := a.audit.Close(); err != nil {
			a.log.Error("audit close failed", "error", err)
		}
	})
	return nil
}

func (a *app) buildEngine(context.Context) error {
	opts := pdp.Options{
		Policies: a.bundles, Auditor: a.audit, Routes: a.cfg.Routes,
		Authenticator: a.identity, Messages: a.messages, Replay: a.replay,
		Observer: a.observer, Instance: a.cfg.Instance, PolicyTimeout: a.cfg.PolicyTimeout,
		Logger: a.log,
	}
	if a.cfg.Unmatched == config.UnmatchedPolicy {
		opts.DefaultRoute = &pdp.Route{Name: "unmatched"}
	}
	var err error
	a.engine, err = pdp.New(opts)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	return nil
}

// readiness lists what /readyz checks: a bundle is active, the audit log
// is writable, token keys are loaded and replay state is reachable.
func (a *app) readiness() []api.ReadinessCheck {
	return []api.ReadinessCheck{
		{Name: "bundle", Check: func(context.Context) error { return a.bundles.Ready() }},
		{Name: "audit", Check: func(context.Context) error { return a.audit.Ready() }},
		{Name: "keys", Check: func(context.Context) error { return a.identity.Ready() }},
		{Name: "replay", Check: a.replay.Ready},
	}
}

func (a *app) onClose(fn func()) { a.closers = append(a.closers, fn) }

// close releases components in reverse order of creation: pollers stop
// before the audit log is flushed, and Redis closes last.
func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}
