package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"

	"github.com/authgate/pdp/api"
	"github.com/authgate/pdp/transport"
)

// listener is one served port.
type listener struct {
	name     string
	serve    func() error
	shutdown func(context.Context) error
}

// buildServers builds the HTTP API, the Envoy gRPC server and the admin
// listener. Metrics are served on the admin listener when it is configured,
// otherwise on the HTTP API.
func (a *app) buildServers(context.Context) error {
	a.cfg.Gateway.TokenHeader = a.cfg.Identity.TokenHeader
	metrics := api.MetricsHandler(a.registry, a.log)
	httpOpts := api.Options{
		Engine: a.engine, Gateway: a.cfg.Gateway, MaxBodyBytes: a.cfg.HTTP.MaxBodyBytes,
		Readiness: a.readiness(), Limits: a.limits, Logger: a.log,
	}
	if a.cfg.Admin.Addr == "" {
		httpOpts.Metrics = metrics
	}
	a.http = api.NewServer(httpOpts)

	if a.cfg.GRPC.Addr != "" {
		if err := a.buildGRPC(); err != nil {
			return err
		}
	}
	if a.cfg.Admin.Addr != "" {
		token, err := os.ReadFile(a.cfg.Admin.TokenFile)
		if err != nil {
			return fmt.Errorf("admin.token_file: %w", err)
		}
		a.admin = api.NewAdminServer(api.AdminOptions{
			Token: strings.TrimSpace(string(token)), Revoker: a.identity,
			Reload: a.bundles.Reload, Metrics: metrics, Pprof: a.cfg.Admin.Pprof, Logger: a.log,
		})
	}
	return nil
}

func (a *app) buildGRPC() error {
	var serverOpts []grpc.ServerOption
	if a.cfg.GRPC.TLS.Enabled() {
		st, err := transport.NewServerTLS(a.cfg.GRPC.TLS, a.log)
		if err != nil {
			return fmt.Errorf("grpc.tls: %w", err)
		}
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(st.Config("h2"))))
	}
	a.health = health.NewServer()
	a.grpc = api.NewGRPCServer(api.GRPCOptions{
		Engine: a.engine, Gateway: a.cfg.Gateway, MaxBodyBytes: a.cfg.HTTP.MaxBodyBytes,
		Health: a.health, ServerOptions: serverOpts, Limits: a.limits, Logger: a.log,
	})
	return nil
}

// listen opens every configured listener; on error it closes the ones
// already open.
func (a *app) listen() ([]listener, error) {
	var opened []net.Listener
	fail := func(err error) ([]listener, error) {
		for _, l := range opened {
			l.Close()
		}
		return nil, err
	}

	httpListener, err := a.listenTLS("http", a.cfg.HTTP.Addr, a.cfg.HTTP.TLS)
	if err != nil {
		return fail(err)
	}
	opened = append(opened, httpListener)
	out := []listener{{name: "http", serve: func() error { return a.http.Serve(httpListener) },
		shutdown: a.http.Shutdown}}

	if a.grpc != nil {
		// gRPC terminates TLS itself, through its transport credentials.
		grpcListener, err := listenTCP("grpc", a.cfg.GRPC.Addr)
		if err != nil {
			return fail(err)
		}
		opened = append(opened, grpcListener)
		out = append(out, listener{name: "grpc", serve: func() error { return a.grpc.Serve(grpcListener) },
			shutdown: a.stopGRPC})
	}

	if a.admin != nil {
		adminListener, err := a.listenTLS("admin", a.cfg.Admin.Addr, a.cfg.Admin.TLS)
		if err != nil {
			return fail(err)
		}
		out = append(out, listener{name: "admin", serve: func() error { return a.admin.Serve(adminListener) },
			shutdown: a.admin.Shutdown})
	}
	return out, nil
}

// listenTLS opens a TCP listener, wrapped in TLS 1.3 when cfg enables it.
func (a *app) listenTLS(name, addr string, cfg transport.TLSConfig) (net.Listener, error) {
	l, err := listenTCP(name, addr)
	if err != nil || !cfg.Enabled() {
		return l, err
	}
	st, err := transport.NewServerTLS(cfg, a.log)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("%s.tls: %w", name, err)
	}
	// http.Server.Serve speaks HTTP/1.1 on a TLS listener it did not set up, so
	// only that protocol is offered.
	return tls.NewListener(l, st.Config("http/1.1")), nil
}

func listenTCP(name, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener on %s: %w", name, addr, err)
	}
	return l, nil
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
