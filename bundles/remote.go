package bundles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
)

// failureLogEvery sets how often repeated download failures are logged at
// Warn: the first failure and every failureLogEvery-th after it. The others
// go to Debug, so a bundle server that is down for hours does not flood
// the log.
const failureLogEvery = 10

// remoteSource polls a bundle server with OPA's downloader, which sends
// If-None-Match with the last ETag, handles 304 Not Modified, long polling
// and retry backoff, and verifies signatures while reading.
type remoteSource struct {
	m        *Manager
	client   rest.Client
	config   download.Config
	resource string
	vc       *bundle.VerificationConfig

	// reloadMu serializes start, reload and stop.
	reloadMu sync.Mutex

	mu         sync.Mutex
	downloader *download.Downloader
	etag       string
	// waiter receives the outcome of the next download, for start.
	waiter   chan error
	failures int
}

func newRemoteSource(m *Manager, vc *bundle.VerificationConfig) (*remoteSource, error) {
	client, err := newRESTClient(m.cfg)
	if err != nil {
		return nil, err
	}
	config := download.Config{Polling: download.PollingConfig{
		MinDelaySeconds: seconds(m.cfg.Polling.MinDelay),
		MaxDelaySeconds: seconds(m.cfg.Polling.MaxDelay),
	}}
	if m.cfg.Polling.LongPollingTimeout > 0 {
		config.Polling.LongPollingTimeoutSeconds = seconds(m.cfg.Polling.LongPollingTimeout)
	}
	if err := config.ValidateAndInjectDefaults(); err != nil {
		return nil, fmt.Errorf("bundle.polling: %w", err)
	}
	return &remoteSource{
		m:        m,
		client:   client,
		config:   config,
		resource: strings.TrimPrefix(m.cfg.Resource, "/"),
		vc:       vc,
	}, nil
}

func seconds(d time.Duration) *int64 {
	s := int64(d / time.Second)
	return &s
}

// newRESTClient builds OPA's REST client for the bundle server. Its logger
// is a no-op: at debug level OPA's client logs response bodies, and this
// package logs download outcomes itself.
func newRESTClient(cfg Config) (rest.Client, error) {
	service := map[string]any{"url": cfg.URL}
	bearer := map[string]any{}
	if cfg.Credentials.BearerToken != "" {
		bearer["token"] = cfg.Credentials.BearerToken
	}
	if cfg.Credentials.BearerTokenFile != "" {
		bearer["token_path"] = cfg.Credentials.BearerTokenFile
	}
	if len(bearer) > 0 {
		service["credentials"] = map[string]any{"bearer": bearer}
	}
	if cfg.TLS.CAFile != "" {
		service["tls"] = map[string]any{"ca_cert": cfg.TLS.CAFile}
	}
	raw, err := json.Marshal(service)
	if err != nil {
		return rest.Client{}, err
	}
	client, err := rest.New(raw, nil, rest.Logger(logging.NewNoOpLogger()), rest.Name("bundle"))
	if err != nil {
		return rest.Client{}, fmt.Errorf("bundle.url: %w", err)
	}
	return client, nil
}

// location names the bundle URL in errors and logs, without any user
// information the URL may carry.
func (r *remoteSource) location() string {
	base := r.m.cfg.URL
	if u, err := url.Parse(base); err == nil {
		u.User = nil
		base = u.String()
	}
	return strings.TrimRight(base, "/") + "/" + r.resource
}

// start creates a downloader, starts its polling loop and waits for the
// outcome of the first download.
func (r *remoteSource) start(ctx context.Context) error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	return r.startLocked(ctx)
}

func (r *remoteSource) startLocked(ctx context.Context) error {
	outcome := make(chan error, 1)
	d := download.New(r.config, r.client, r.resource).
		WithCallback(r.onUpdate).
		WithBundleVerificationConfig(r.vc).
		WithSizeLimitBytes(r.m.cfg.MaxSize).
		WithBundleParserOpts(ast.ParserOptions{RegoVersion: ast.RegoV1})

	r.mu.Lock()
	d.SetCache(r.etag)
	r.downloader = d
	r.waiter = outcome
	r.mu.Unlock()

	// The downloader runs its loop on its own background context until
	// Stop, so ctx only bounds the wait for the first outcome.
	d.Start(ctx)
	select {
	case err := <-outcome:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reload stops the polling loop and starts a new one, which polls at once
// with the current ETag.
func (r *remoteSource) reload(ctx context.Context) error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	r.stopLocked()
	return r.startLocked(ctx)
}

func (r *remoteSource) stop() {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	r.stopLocked()
}

func (r *remoteSource) stopLocked() {
	r.mu.Lock()
	d := r.downloader
	r.downloader = nil
	r.mu.Unlock()
	if d != nil {
		d.Stop(context.Background())
	}
}

// onUpdate is the downloader callback. It runs on the polling goroutine.
func (r *remoteSource) onUpdate(ctx context.Context, u download.Update) error {
	var err error
	switch {
	case u.Error != nil && isTransportError(u.Error):
		err = fmt.Errorf("download %s: %w", r.location(), u.Error)
		r.m.setStatus(err)
		r.logFailure("bundle download failed", err)
	case u.Error != nil:
		// The reader rejected the bundle (signature, roots, Rego syntax).
		// OPA's downloader then forgets the ETag and downloads the same
		// bundle again after its retry backoff, so the log is rate-limited.
		err = fmt.Errorf("read bundle %s: %w", r.location(), u.Error)
		r.m.setStatus(err)
		r.logFailure("bundle rejected", err)
	case u.Bundle == nil:
		// 304 Not Modified: the active revision is current.
		r.resetFailures()
	default:
		r.resetFailures()
		err = r.m.activate(ctx, u.Bundle)
	}

	r.mu.Lock()
	if u.Error == nil {
		r.etag = u.ETag
	}
	waiter := r.waiter
	r.waiter = nil
	r.mu.Unlock()
	if waiter != nil {
		waiter <- err
	}
	// Manager.activate logs a bundle that fails to compile. Returning nil
	// keeps the normal polling delay, and the downloader keeps that
	// bundle's ETag, so the server answers 304 until it publishes a new
	// bundle.
	return nil
}

// isTransportError reports whether err means the bundle server could not
// be reached or answered with an error status, as opposed to a bundle that
// was downloaded and rejected.
func isTransportError(err error) bool {
	var status download.HTTPError
	var urlErr *url.Error
	return errors.As(err, &status) || errors.As(err, &urlErr)
}

// logFailure logs a failed download or read at Warn the first time and
// every failureLogEvery-th time in a row, and at Debug otherwise.
func (r *remoteSource) logFailure(msg string, err error) {
	r.mu.Lock()
	r.failures++
	n := r.failures
	r.mu.Unlock()

	attrs := []any{"source", sourceRemote, "error", err, "consecutive_failures", n}
	if file, line := errorLocation(err); file != "" {
		attrs = append(attrs, "file", file, "line", line)
	}
	if cur := r.m.active.Load(); cur != nil {
		attrs = append(attrs, "bundle_revision", cur.id)
	}
	if n == 1 || n%failureLogEvery == 0 {
		r.m.log.Warn(msg, attrs...)
		return
	}
	r.m.log.Debug(msg, attrs...)
}

func (r *remoteSource) resetFailures() {
	r.mu.Lock()
	r.failures = 0
	r.mu.Unlock()
}
