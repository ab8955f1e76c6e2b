package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// AdminOptions configure the admin listener.
type AdminOptions struct {
	// Token is the bearer token every admin call must present.
	Token string
	// Revoker backs GET and POST /v1/admin/revocations.
	Revoker Revoker
	// Reload forces a bundle reload for POST /v1/admin/bundle/reload.
	Reload func(ctx context.Context) error
	// Metrics, when set, is served at GET /metrics.
	Metrics http.Handler
	// Pprof serves net/http/pprof's profiles under /debug/pprof/.
	Pprof  bool
	Logger *slog.Logger
}

// AdminServer is the admin HTTP listener: revocations, bundle reload and
// metrics, all behind the admin bearer token.
type AdminServer struct {
	echo *echo.Echo
	http *http.Server
	log  *slog.Logger
}

// NewAdminServer returns an AdminServer with its routes registered.
func NewAdminServer(opts AdminOptions) *AdminServer {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(opts.Logger, nil)
	e.Use(RequireAdminToken(opts.Token))

	if opts.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(opts.Metrics))
	}
	if opts.Pprof {
		e.Any("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(servePprof)))
	}
	g := e.Group("/v1/admin")
	RegisterRevocation(g, opts.Revoker)
	g.POST("/bundle/reload", func(c echo.Context) error {
		if err := opts.Reload(c.Request().Context()); err != nil {
			opts.Logger.Warn("bundle reload failed", "error", err)
			return c.JSON(http.StatusUnprocessableEntity, map[string]string{
				"status": "rejected", "message": "the bundle was rejected; the last good revision keeps serving",
			})
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "reloaded"})
	})
	return &AdminServer{echo: e, log: opts.Logger}
}

// servePprof routes /debug/pprof/NAME to net/http/pprof. Its Index serves
// the named runtime profiles (heap, goroutine, ...) as well as the index.
func servePprof(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r)
	}
}

// Handler returns the admin http.Handler, for tests.
func (s *AdminServer) Handler() http.Handler { return s.echo }

// Serve accepts connections on l until Shutdown.
func (s *AdminServer) Serve(l net.Listener) error {
	s.http = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the listener and waits for in-flight calls.
func (s *AdminServer) Shutdown(ctx context.Context) error {
	if s.http == nil {
		return nil
	}
	return s.http.Shutdown(ctx)
}
