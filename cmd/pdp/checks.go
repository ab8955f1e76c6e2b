package main

import (
	"context"
	"fmt"

	"github.com/authgate/pdp/identity"
	"github.com/authgate/pdp/message"
	"github.com/authgate/pdp/replaycache"
)

// buildRedis connects the one Redis client that the replay store,
// revocation sync and audit stream share, when replay.backend is redis.
func (a *app) buildRedis(context.Context) error {
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
	a.identity, err = identity.New(a.cfg.Identity, identity.Options{
		Logger: a.log, Redis: a.redis, OnJWKSRefresh: a.metrics.JWKSRefresh,
	})
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

	a.replay, err = replaycache.New(a.cfg.Replay, replaycache.Options{
		Client: a.redis, Logger: a.log, OnRedis: a.metrics.ObserveRedis,
	})
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
