// Package api holds the PDP's front doors: the echo HTTP server with the
// direct decision API and health endpoints, and the adapters that map each
// gateway's call to a pdp.Request and the pdp.Decision back to its wire
// format.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/telemetry"
)

// Decider is the engine as the front doors use it.
type Decider interface {
	Decide(ctx context.Context, req *pdp.Request) pdp.Decision
	Reject(ctx context.Context, req *pdp.Request, reason pdp.Reason, err error) pdp.Decision
}

// ReadinessCheck returns nil when one dependency is ready.
type ReadinessCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Options configure a Server.
type Options struct {
	Engine Decider
	// Readiness lists the checks behind GET /readyz.
	Readiness []ReadinessCheck
	// MaxBodyBytes caps every request body; larger bodies are denied with
	// request.too_large.
	MaxBodyBytes int64
	// Gateway configures the gateway front doors (Envoy HTTP ext_authz,
	// NGINX auth_request, OPA REST, AuthZEN).
	Gateway Config
	// Limits, when set, applies the concurrency, header and deadline limits
	// to every route but the probes.
	Limits *Limits
	// Middleware runs before every route, in order.
	Middleware []echo.MiddlewareFunc
	// Metrics, when set, is served at GET /metrics.
	Metrics http.Handler
	Logger  *slog.Logger
}

// Server is the HTTP API.
type Server struct {
	opts     Options
	gw       Config
	querier  Querier
	echo     *echo.Echo
	log      *slog.Logger
	http     *http.Server
	draining chan struct{}
}

// NewServer returns a Server with every HTTP route registered.
func NewServer(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	s := &Server{
		opts: opts, gw: opts.Gateway.withDefaults(), echo: e, log: opts.Logger,
		draining: make(chan struct{}),
	}
	e.HTTPErrorHandler = errorHandler(opts.Logger, s.gatewayStatus)
	s.querier, _ = opts.Engine.(Querier)
	e.Pre(s.keepGatewayMethod)
	e.Use(s.recoverPanic)
	e.Use(extractTraceContext)
	if opts.Limits != nil {
		e.Use(opts.Limits.middleware(limitHooks{mapStatus: s.gatewayStatus, record: s.recordRejection}))
	}
	e.Use(opts.Middleware...)
	s.routes()
	return s
}

func (s *Server) routes() {
	s.echo.GET("/healthz", s.healthz)
	s.echo.GET("/readyz", s.readyz)
	s.echo.POST("/v1/decision", s.decision)
	if s.opts.Metrics != nil {
		s.echo.GET("/metrics", echo.WrapHandler(s.opts.Metrics))
	}
	s.gatewayRoutes()
}

// gatewayRoutes registers the gateway front doors. The OPA REST routes
// need an engine that implements Querier.
func (s *Server) gatewayRoutes() {
	s.echo.Any(s.gw.ExtAuthzPrefix, s.extAuthz)
	s.echo.Any(s.gw.ExtAuthzPrefix+"/*", s.extAuthz)
	s.echo.Any(s.gw.NGINXPath, s.nginxAuth)

	if !s.gw.OPARest.Disabled && s.querier != nil {
		s.echo.POST("/v1/data", s.opaDataPost)
		s.echo.POST("/v1/data/*", s.opaDataPost)
		s.echo.GET("/v1/data", s.opaDataGet)
		s.echo.GET("/v1/data/*", s.opaDataGet)
		s.echo.POST("/", s.opaDefaultDecision)
	}
	if !s.gw.AuthZEN.Disabled {
		s.echo.POST("/access/v1/evaluation", s.authzenEvaluate)
		s.echo.POST("/access/v1/evaluations", s.authzenEvaluations)
		s.echo.GET("/.well-known/authzen-configuration", s.authzenConfiguration)
	}
}

// gatewayStatus maps an error status on a gateway endpoint to one its
// gateway treats as a denial. Envoy's HTTP mode lets a 5xx through when
// failure_mode_allow is on, and NGINX auth_request turns anything but 2xx,
// 401 and 403 into a 500, so both get 403 instead.
func (s *Server) gatewayStatus(path string, status int) int {
	switch s.frontDoorOf(path) {
	case pdp.FrontDoorNGINX:
		if status != http.StatusUnauthorized && status != http.StatusForbidden {
			return http.StatusForbidden
		}
	case pdp.FrontDoorEnvoyHTTP:
		if status >= http.StatusInternalServerError {
			return http.StatusForbidden
		}
	}
	return status
}

// routedMethods are the methods echo routes for Any.
var routedMethods = map[string]bool{
	http.MethodConnect: true, http.MethodDelete: true, http.MethodGet: true, http.MethodHead: true,
	http.MethodOptions: true, http.MethodPatch: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodTrace: true, "PROPFIND": true, "REPORT": true,
}

// originalMethodKey is the echo context key of a request method that
// keepGatewayMethod routed as GET.
const originalMethodKey = "pdp.original_method"

// keepGatewayMethod lets the Envoy HTTP endpoint take any request method.
// Envoy's HTTP mode forwards the original method (PURGE, QUERY, MKCOL...),
// and echo responds 405 to a method it does not route. Such a method is
// kept in the context and the request is routed as GET.
func (s *Server) keepGatewayMethod(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if !routedMethods[r.Method] && s.frontDoorOf(r.URL.Path) == pdp.FrontDoorEnvoyHTTP {
			c.Set(originalMethodKey, r.Method)
			r.Method = http.MethodGet
		}
		return next(c)
	}
}

// requestMethod returns the method the client sent.
func requestMethod(c echo.Context) string {
	if m, ok := c.Get(originalMethodKey).(string); ok {
		return m
	}
	return c.Request().Method
}

// recordRejection audits a request that the limits rejected before it
// reached a handler, under the front door its path belongs to. Every
// response that names a decision id then has its audit record.
func (s *Server) recordRejection(c echo.Context, reason pdp.Reason, err error) pdp.Decision {
	return s.opts.Engine.Reject(c.Request().Context(), &pdp.Request{FrontDoor: s.frontDoorOf(c.Request().URL.Path)},
		reason, err)
}

// frontDoorOf names the front door that serves path.
func (s *Server) frontDoorOf(path string) string {
	switch {
	case path == s.gw.NGINXPath:
		return pdp.FrontDoorNGINX
	case path == s.gw.ExtAuthzPrefix || strings.HasPrefix(path, s.gw.ExtAuthzPrefix+"/"):
		return pdp.FrontDoorEnvoyHTTP
	case strings.HasPrefix(path, "/access/"):
		return pdp.FrontDoorAuthZEN
	case path == "/" || path == "/v1/data" || strings.HasPrefix(path, "/v1/data/"):
		return pdp.FrontDoorOPA
	}
	return pdp.FrontDoorDirect
}

// recoverPanic turns a panic in a handler into a logged error response, so
// a gateway gets a denial instead of a reset connection, which Envoy's
// failure_mode_allow would let through.
func (s *Server) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("handler panicked", "path", c.Request().URL.Path, "error", fmt.Sprint(r),
					"stack", string(debug.Stack()))
				err = echo.NewHTTPError(http.StatusInternalServerError)
			}
		}()
		return next(c)
	}
}

// extractTraceContext puts the caller's W3C trace context (traceparent,
// tracestate) into the request context, so decision spans and audit records
// carry the caller's trace id.
func extractTraceContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		c.SetRequest(r.WithContext(telemetry.ExtractHTTP(r.Context(), r.Header)))
		return next(c)
	}
}

// Handler returns the server's http.Handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve accepts connections on l until Shutdown. It returns nil after a
// graceful shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.http = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 5 * time.Second,
		// ReadTimeout bounds header and body together for routes without
		// limits; the limits cut body reads at the decision deadline.
		ReadTimeout:    30 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// SetDraining makes /readyz fail, so load balancers stop sending traffic
// before the listener closes.
func (s *Server) SetDraining() {
	select {
	case <-s.draining:
	default:
		close(s.draining)
	}
}

// Shutdown stops accepting connections and waits for in-flight requests.
func (s *Server) Shutdown(ctx context.Context) error {
	s.SetDraining()
	if s.http == nil {
		return nil
	}
	return s.http.Shutdown(ctx)
}
