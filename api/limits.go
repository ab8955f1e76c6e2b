package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/authgate/pdp/pdp"
)

// Defaults for LimitsConfig fields left at zero.
const (
	// DefaultMaxConcurrent is the number of decisions served at once before
	// new ones are shed with 429. Each decision in flight holds its input
	// and buffers (tens of kilobytes), so the bound also caps memory under
	// overload.
	// NOTE: an estimate: at about half a millisecond of CPU per decision on
	// one core, 256 in flight is already about 100 ms of queued work. Tune
	// it from pdp_decisions_in_flight and pdp_decision_duration_seconds.
	DefaultMaxConcurrent = 256
	// DefaultRetryAfter is the Retry-After sent with a 429.
	DefaultRetryAfter = time.Second
	// DefaultMaxHeaderCount is the largest number of header fields in one
	// request.
	DefaultMaxHeaderCount = 100
	// DefaultMaxHeaderBytes is the largest total size of header names and
	// values in one request (32 KiB), below the HTTP server's 64 KiB limit
	// on the raw header block.
	DefaultMaxHeaderBytes = 32 << 10
	// DefaultDecisionTimeout bounds one decision from the request's arrival
	// to its response. It is above the 500ms default policy timeout, so a
	// slow policy fails with policy.error before the whole request times out.
	DefaultDecisionTimeout = 2 * time.Second
)

// LimitsConfig bounds the work one request or all requests together can
// cause. Zero fields take the defaults above.
type LimitsConfig struct {
	// MaxConcurrent is the number of decisions served at once. A request
	// beyond it is rejected at once with 429 and request.overloaded, never
	// queued. Default DefaultMaxConcurrent.
	MaxConcurrent int `yaml:"max_concurrent"`
	// RetryAfter is sent as the Retry-After header of a 429, rounded up to
	// whole seconds. Default DefaultRetryAfter.
	RetryAfter time.Duration `yaml:"retry_after"`
	// MaxHeaderCount is the largest number of header fields in a request;
	// more are rejected with 431 and request.too_large. Default
	// DefaultMaxHeaderCount.
	MaxHeaderCount int `yaml:"max_header_count"`
	// MaxHeaderBytes is the largest total length of header names and
	// values, in bytes; more are rejected with 431 and request.too_large.
	// Default DefaultMaxHeaderBytes.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// DecisionTimeout bounds one request. Steps that honor the context
	// (Redis, JWKS fetches, policy evaluation) stop when it expires. A
	// request with no response by then gets 503 and request.timeout. Default
	// DefaultDecisionTimeout.
	DecisionTimeout time.Duration `yaml:"decision_timeout"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c LimitsConfig) WithDefaults() LimitsConfig {
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.MaxHeaderCount == 0 {
		c.MaxHeaderCount = DefaultMaxHeaderCount
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.DecisionTimeout == 0 {
		c.DecisionTimeout = DefaultDecisionTimeout
	}
	return c
}

// Validate reports every negative limit, each with its key.
func (c *LimitsConfig) Validate() error {
	var errs []error
	if c.MaxConcurrent < 0 {
		errs = append(errs, fmt.Errorf("max_concurrent: must not be negative, got %d", c.MaxConcurrent))
	}
	if c.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("retry_after: must not be negative, got %s", c.RetryAfter))
	}
	if c.MaxHeaderCount < 0 {
		errs = append(errs, fmt.Errorf("max_header_count: must not be negative, got %d", c.MaxHeaderCount))
	}
	if c.MaxHeaderBytes < 0 {
		errs = append(errs, fmt.Errorf("max_header_bytes: must not be negative, got %d", c.MaxHeaderBytes))
	}
	if c.DecisionTimeout < 0 {
		errs = append(errs, fmt.Errorf("decision_timeout: must not be negative, got %s", c.DecisionTimeout))
	}
	return errors.Join(errs...)
}

// Limiter bounds the number of concurrent decisions without a queue. A
// caller either gets a slot at once or must shed the request. It is safe
// for concurrent use.
type Limiter struct {
	max      int64
	inFlight atomic.Int64
	rejected atomic.Uint64
}

// NewLimiter returns a Limiter with max slots; max below 1 means 1.
func NewLimiter(max int) *Limiter {
	if max < 1 {
		max = 1
	}
	return &Limiter{max: int64(max)}
}

// TryAcquire takes a slot and reports true, or reports false at once when
// all slots are taken. Every true must be paired with one Release.
func (l *Limiter) TryAcquire() bool {
	for {
		n := l.inFlight.Load()
		if n >= l.max {
			l.rejected.Add(1)
			return false
		}
		if l.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release returns a slot taken by TryAcquire.
func (l *Limiter) Release() {
	l.inFlight.Add(-1)
}

// InFlight returns the number of slots taken.
func (l *Limiter) InFlight() int { return int(l.inFlight.Load()) }

// Max returns the number of slots.
func (l *Limiter) Max() int { return int(l.max) }

// Rejected returns the number of TryAcquire calls that found no slot.
func (l *Limiter) Rejected() uint64 { return l.rejected.Load() }

// LimitsOptions wire a Limits.
type LimitsOptions struct {
	// Logger receives one Debug line per rejected request.
	Logger *slog.Logger
	// OnReject, when set, is called once per rejected request with its
	// reason code, for example telemetry.Metrics.LimitRejected.
	OnReject func(reason pdp.Reason)
	// Skip, when set, exempts a request from every limit. Nil exempts GET
	// /healthz, /readyz and /metrics, so probes and scrapes still work
	// while decisions are shed.
	Skip func(c echo.Context) bool
}

// Limits applies LimitsConfig to the HTTP and gRPC front doors. One
// Limits shared by both gives them one concurrency budget.
type Limits struct {
	cfg     LimitsConfig
	limiter *Limiter
	opts    LimitsOptions
}

// NewLimits returns the limits for cfg, with defaults applied.
func NewLimits(cfg LimitsConfig, opts LimitsOptions) *Limits {
	cfg = cfg.WithDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Skip == nil {
		opts.Skip = skipProbes
	}
	return &Limits{cfg: cfg, limiter: NewLimiter(cfg.MaxConcurrent), opts: opts}
}

// Limiter returns the concurrency limiter, for a handler that builds its
// own overload response, and for an in-flight gauge.
func (l *Limits) Limiter() *Limiter { return l.limiter }

// Config returns the limits in force, defaults applied.
func (l *Limits) Config() LimitsConfig { return l.cfg }

// RetryAfterSeconds returns the Retry-After value: RetryAfter rounded up
// to whole seconds, at least 1.
func (l *Limits) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(l.cfg.RetryAfter.Seconds())))
}

// CheckHeaders returns a request.too_large error when headers exceed
// MaxHeaderCount or MaxHeaderBytes, counting each value as one field. It
// is meant for the Envoy gRPC Check handler, to apply to the
// CheckRequest's HTTP headers.
func (l *Limits) CheckHeaders(headers map[string]string) error {
	if len(headers) > l.cfg.MaxHeaderCount {
		return pdp.Denyf(pdp.ReasonRequestTooLarge, "%d header fields exceed max_header_count %d",
			len(headers), l.cfg.MaxHeaderCount)
	}
	size := 0
	for name, value := range headers {
		size += len(name) + len(value)
	}
	return l.checkHeaderBytes(size)
}

// checkHTTPHeaders applies the header limits to an HTTP request.
func (l *Limits) checkHTTPHeaders(h http.Header) error {
	count, size := 0, 0
	for name, values := range h {
		count += len(values)
		for _, v := range values {
			size += len(name) + len(v)
		}
	}
	if count > l.cfg.MaxHeaderCount {
		return pdp.Denyf(pdp.ReasonRequestTooLarge, "%d header fields exceed max_header_count %d",
			count, l.cfg.MaxHeaderCount)
	}
	return l.checkHeaderBytes(size)
}

func (l *Limits) checkHeaderBytes(size int) error {
	if size > l.cfg.MaxHeaderBytes {
		return pdp.Denyf(pdp.ReasonRequestTooLarge, "%d header bytes exceed max_header_bytes %d",
			size, l.cfg.MaxHeaderBytes)
	}
	return nil
}

// Middleware returns echo middleware that, in order, rejects oversized
// headers with 431, sheds requests beyond MaxConcurrent with 429 and
// Retry-After, and gives each request a DecisionTimeout deadline, sending
// 503 when the handler has not responded by then. Rejections carry a JSON
// error body with the reason code and are not audited: they are not
// decisions, and an audit fsync per shed request would add load exactly
// when the PDP is overloaded.
func (l *Limits) Middleware() echo.MiddlewareFunc {
	return l.middleware(limitHooks{})
}

// limitHooks adapt the limits' rejections to the server that uses them.
type limitHooks struct {
	// mapStatus turns a rejection status into one the endpoint's gateway
	// treats as a denial.
	mapStatus func(path string, status int) int
	// record audits the rejection as a decision and returns it.
	record func(c echo.Context, reason pdp.Reason, err error) pdp.Decision
}

// middleware is Middleware with hooks: statuses passed through
// hooks.mapStatus, and each rejection recorded through hooks.record.
func (l *Limits) middleware(hooks limitHooks) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if l.opts.Skip(c) {
				return next(c)
			}
			if err := l.checkHTTPHeaders(c.Request().Header); err != nil {
				return l.rejectHTTP(c, hooks, http.StatusRequestHeaderFieldsTooLarge, err)
			}
			if !l.limiter.TryAcquire() {
				c.Response().Header().Set("Retry-After", strconv.Itoa(l.RetryAfterSeconds()))
				return l.rejectHTTP(c, hooks, http.StatusTooManyRequests,
					pdp.Denyf(pdp.ReasonOverloaded, "%d decisions in flight", l.limiter.Max()))
			}
			defer l.limiter.Release()
			return l.withDeadline(c, hooks, next)
		}
	}
}

// withDeadline runs next under the decision deadline. The deadline is
// cooperative: next runs on this goroutine and is never abandoned, so a
// step that ignores its context still finishes before the response.
func (l *Limits) withDeadline(c echo.Context, hooks limitHooks, next echo.HandlerFunc) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), l.cfg.DecisionTimeout)
	defer cancel()
	c.SetRequest(c.Request().WithContext(ctx))
	// Reading the body does not watch the context, so a client that stalls
	// its body would hold a decision slot for good: the connection's read
	// deadline ends such a read at the decision deadline.
	if deadline, ok := ctx.Deadline(); ok {
		if err := http.NewResponseController(c.Response()).SetReadDeadline(deadline); err != nil {
			l.opts.Logger.Debug("read deadline not set", "error", err)
		}
	}

	err := next(c)
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || c.Response().Committed {
		return err
	}
	return l.rejectHTTP(c, hooks, http.StatusServiceUnavailable, pdp.Denyf(pdp.ReasonTimeout,
		"no response within decision_timeout %s (handler error: %v)", l.cfg.DecisionTimeout, err))
}

// rejectHTTP sends the error response for a request the limits rejected.
func (l *Limits) rejectHTTP(c echo.Context, hooks limitHooks, status int, err error) error {
	reason := pdp.ReasonOf(err, pdp.ReasonRequestInvalid)
	l.reject(reason, err, "path", c.Request().URL.Path)
	body := errorBody{Reason: reason, Message: reason.Text()}
	if hooks.mapStatus != nil {
		status = hooks.mapStatus(c.Request().URL.Path, status)
	}
	if hooks.record != nil {
		d := hooks.record(c, reason, err)
		body.DecisionID = d.ID
		c.Response().Header().Set("x-pdp-decision-id", d.ID)
	}
	c.Response().Header().Set("x-pdp-reason", string(reason))
	return c.JSON(status, body)
}

// reject logs and counts one rejected request.
func (l *Limits) reject(reason pdp.Reason, err error, attrs ...any) {
	if l.opts.OnReject != nil {
		l.opts.OnReject(reason)
	}
	attrs = append(attrs, "reason", string(reason), "error", err)
	l.opts.Logger.Debug("request rejected by limits", attrs...)
}

// skipProbes exempts the health and metrics endpoints from the limits.
func skipProbes(c echo.Context) bool {
	if c.Request().Method != http.MethodGet {
		return false
	}
	switch c.Request().URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return false
}
