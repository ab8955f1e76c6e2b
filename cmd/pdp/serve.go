package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/authgate/pdp/config"
)

// runServe implements `pdp serve`.
func runServe(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration `file` (default: embedded defaults)")
	if err := fs.Parse(args); err != nil {
		return 2
	}

	cfg, err := config.Load(*configPath, os.Environ())
	if err != nil {
		fmt.Fprintf(os.Stderr, "pdp: invalid configuration:\n%v\n", err)
		return 1
	}
	log := newLogger(cfg.Log, os.Stderr)
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	app, err := newApp(ctx, cfg, log)
	if err != nil {
		log.Error("startup failed", "error", err)
		fmt.Fprintf(os.Stderr, "pdp: %v\n", err)
		return 1
	}
	if err := app.run(ctx); err != nil {
		log.Error("server stopped with an error", "error", err)
		return 1
	}
	return 0
}

// run serves every listener until ctx ends, then stops in order: not
// ready, listeners closed after in-flight requests, pollers, audit flush,
// Redis.
func (a *app) run(ctx context.Context) error {
	listeners, err := a.listen()
	if err != nil {
		a.close()
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, l := range listeners {
		g.Go(func() error { return l.serve() })
	}
	a.log.Info("pdp started", "instance", a.cfg.Instance, "http_addr", a.cfg.HTTP.Addr,
		"grpc_addr", a.cfg.GRPC.Addr, "admin_addr", a.cfg.Admin.Addr)

	<-gctx.Done()
	a.log.Info("pdp stopping")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	a.http.SetDraining()
	for _, l := range listeners {
		if err := l.shutdown(shutdownCtx); err != nil {
			a.log.Warn("listener shutdown incomplete", "listener", l.name, "error", err)
		}
	}
	err = g.Wait()
	a.close()
	a.log.Info("pdp stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
