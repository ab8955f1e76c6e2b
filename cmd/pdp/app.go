package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/authgate/pdp/api"
	"github.com/authgate/pdp/audit"
	"github.com/authgate/pdp/bundles"
	"github.com/authgate/pdp/config"
	"github.com/authgate/pdp/identity"
	"github.com/authgate/pdp/message"
	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/policies"
	"github.com/authgate/pdp/replaycache"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
)

// app holds the wired components of one serving process.
type app struct {
	cfg      *config.Config
	log      *slog.Logger
	redis    redis.UniversalClient
	bundles  *bundles.Manager
	audit    *audit.Log
	identity *identity.Authenticator
	messages *message.Verifier
	replay   replaycache.Store
	engine   *pdp.Engine
	http     *api.Server
	grpc     *grpc.Server
	health   *health.Server
	closers  []func()
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
	if err := a.buildRedis(); err != nil {
		return err
	}
	var err error
	a.bundles, err = bundles.NewManager(a.cfg.Bundle, bundles.Options{
		Logger: a.log, Embedded: policies.Bundle,
	})
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := a.bundles.Start(ctx); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	a.onClose(a.bundles.Stop)

	a.audit, err = audit.Open(a.cfg.Audit, audit.Options{
		Instance: a.cfg.Instance, Logger: a.log, Redis: a.redis,
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	a.onClose(func() {
		if err := a.audit.Close(); err != nil {
			a.log.Error("audit close failed", "error", err)
		}
	})

	if err := a.buildChecks(ctx); err != nil {
		return err
	}

	opts := pdp.Options{
		Policies: a.bundles, Auditor: a.audit, Routes: a.cfg.Routes,
		Authenticator: a.identity, Messages: a.messages, Replay: a.replay,
		Instance: a.cfg.Instance, PolicyTimeout: a.cfg.PolicyTimeout, Logger: a.log,
	}
	if a.cfg.Unmatched == config.UnmatchedPolicy {
		opts.DefaultRoute = &pdp.Route{Name: "unmatched"}
	}
	a.engine, err = pdp.New(opts)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}

	a.http = api.NewServer(api.Options{
		Engine: a.engine, Gateway: a.cfg.Gateway, MaxBodyBytes: a.cfg.HTTP.MaxBodyBytes,
		Logger: a.log,
		Readiness: []api.ReadinessCheck{
			{Name: "bundle", Check: func(context.Context) error { return a.bundles.Ready() }},
			{Name: "audit", Check: func(context.Context) error { return a.audit.Ready() }},
			{Name: "keys", Check: func(context.Context) error { return a.identity.Ready() }},
			{Name: "replay", Check: a.replay.Ready},
		},
	})

	if a.cfg.GRPC.Addr != "" {
		a.health = health.NewServer()
		a.grpc = api.NewGRPCServer(api.GRPCOptions{
			Engine: a.engine, Gateway: a.cfg.Gateway, MaxBodyBytes: a.cfg.HTTP.MaxBodyBytes,
			Health: a.health, Logger: a.log,
		})
	}
	return nil
}

// buildRedis connects the one Redis client that the replay store,
// revocation sync and audit stream share, when replay.backend is redis.
func (a *app) buildRedis() error {
	if a.cfg.Replay.Backend != replaycache.BackendRedis {
		return nil
	}
	client, err := replaycache.NewClient(a.cfg.Replay.Redis)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	a.redis = client
	a.onClose(func() {
		if err := client.Close(); err != nil {
			a.log.Warn("redis close failed", "error", err)
		}
	})
	return nil
}

// buildChecks builds the mandatory checks: caller identity, message
// signatures and replay state.
func (a *app) buildChecks(ctx context.Context) error {
	var err error
	a.identity, err = identity.New(a.cfg.Identity, identity.Options{Logger: a.log, Redis: a.redis})
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if err := a.identity.Start(ctx); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	a.onClose(a.identity.Stop)

	a.messages, err = message.NewVerifier(a.cfg.Messages, message.Options{Logger: a.log})
	if err != nil {
		return fmt.Errorf("messages: %w", err)
	}

	a.replay, err = replaycache.New(a.cfg.Replay, replaycache.Options{Client: a.redis, Logger: a.log})
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	a.onClose(func() {
		if err := a.replay.Close(); err != nil {
			a.log.Warn("replay store close failed", "error", err)
		}
	})
	return nil
}

// listen opens every configured listener; on error it closes the ones
// already open.
func (a *app) listen() ([]listener, error) {
	httpListener, err := listenTCP("http", a.cfg.HTTP.Addr)
	if err != nil {
		return nil, err
	}
	out := []listener{{
		name:     "http",
		serve:    func() error { return a.http.Serve(httpListener) },
		shutdown: a.http.Shutdown,
	}}
	if a.grpc == nil {
		return out, nil
	}

	grpcListener, err := listenTCP("grpc", a.cfg.GRPC.Addr)
	if err != nil {
		httpListener.Close()
		return nil, err
	}
	return append(out, listener{
		name:     "grpc",
		serve:    func() error { return a.grpc.Serve(grpcListener) },
		shutdown: a.stopGRPC,
	}), nil
}

// stopGRPC reports NOT_SERVING, then waits for in-flight checks until ctx
// ends and cuts the rest.
func (a *app) stopGRPC(ctx context.Context) error {
	a.health.Shutdown()
	done := make(chan struct{})
	go func() {
		a.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		a.grpc.Stop()
		return ctx.Err()
	}
}

func (a *app) onClose(fn func()) { a.closers = append(a.closers, fn) }

// close releases components in reverse order of creation.
func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}
