package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// jwksFetchTimeout bounds one JWKS request, independent of the request
	// that may have triggered it.
	jwksFetchTimeout = 10 * time.Second
	// jwksErrorLogInterval rate-limits the warning for a failing endpoint.
	jwksErrorLogInterval = time.Minute
	// maxJWKSRedirects bounds same-host redirects.
	maxJWKSRedirects = 3
)

// jwksSource fetches one issuer's JWKS, keeps the last good key set and
// rate-limits fetches to one per JWKSMinRefreshInterval.
type jwksSource struct {
	issuer string
	url    string
	cfg    *IssuerConfig
	client *http.Client
	log    *slog.Logger
	// publish receives every successfully fetched key set.
	publish func([]*verificationKey)
	// onRefresh, when not nil, receives the outcome of every fetch.
	onRefresh func(issuer string, err error)

	mu          sync.Mutex
	lastAttempt time.Time
	inflight    chan struct{}
	loaded      bool
	lastErr     error
	nextDelay   time.Duration
	lastErrLog  time.Time
	suppressed  int
}

func newJWKSSource(cfg *IssuerConfig, log *slog.Logger, publish func([]*verificationKey),
	onRefresh func(issuer string, err error),
) (*jwksSource, error) {
	client, err := newJWKSClient(cfg.JWKSCAFile)
	if err != nil {
		return nil, err
	}
	return &jwksSource{
		issuer:    cfg.Name,
		url:       cfg.JWKSURL,
		cfg:       cfg,
		client:    client,
		log:       log,
		publish:   publish,
		onRefresh: onRefresh,
	}, nil
}

// newJWKSClient returns an HTTPS client that trusts caFile (or the system
// roots) and follows redirects only to https URLs on the same host, so that
// a compromised or misconfigured endpoint cannot point us at another server.
func newJWKSClient(caFile string) (*http.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pemData, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read jwks_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("jwks_ca_file %s contains no PEM certificate", caFile)
		}
		tlsConfig.RootCAs = pool
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxJWKSRedirects {
				return fmt.Errorf("more than %d redirects", maxJWKSRedirects)
			}
			if req.URL.Scheme != "https" || req.URL.Host != via[0].URL.Host {
				return fmt.Errorf("redirect to %s://%s is not followed: only same-host https redirects are",
					req.URL.Scheme, req.URL.Host)
			}
			return nil
		},
	}, nil
}

// refresh starts a fetch unless one is running or the last one started
// less than JWKSMinRefreshInterval ago. It returns a channel that is closed
// when the running or started fetch ends, or nil when no fetch runs.
func (s *jwksSource) refresh(base context.Context) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != nil {
		return s.inflight
	}
	now := time.Now()
	if !s.lastAttempt.IsZero() && now.Sub(s.lastAttempt) < s.cfg.JWKSMinRefreshInterval {
		return nil
	}
	s.lastAttempt = now
	done := make(chan struct{})
	s.inflight = done
	go func() {
		keys, maxAge, err := s.fetch(base)
		s.finish(keys, maxAge, err)
		if s.onRefresh != nil {
			s.onRefresh(s.issuer, err)
		}
		close(done)
	}()
	return done
}

// finish records the outcome of a fetch. A failure keeps the last good key
// set and is logged at most once per jwksErrorLogInterval.
func (s *jwksSource) finish(keys []*verificationKey, maxAge time.Duration, err error) {
	if err == nil {
		s.publish(keys)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = nil
	if err != nil {
		s.lastErr = err
		s.nextDelay = s.cfg.JWKSMinRefreshInterval
		if time.Since(s.lastErrLog) >= jwksErrorLogInterval {
			s.log.Warn("jwks fetch failed, keeping the last good key set",
				"issuer", s.issuer, "url", s.url, "error", err, "suppressed", s.suppressed)
			s.lastErrLog = time.Now()
			s.suppressed = 0
		} else {
			s.suppressed++
		}
		return
	}
	if s.lastErr != nil {
		s.log.Info("jwks fetch recovered", "issuer", s.issuer, "url", s.url)
	}
	s.lastErr = nil
	s.loaded = true
	s.nextDelay = s.refreshDelay(maxAge)
	s.log.Debug("jwks fetched", "issuer", s.issuer, "keys", len(keys), "next_refresh", s.nextDelay)
}

// refreshDelay clamps a Cache-Control max-age into the configured bounds;
// without max-age the configured refresh interval applies.
func (s *jwksSource) refreshDelay(maxAge time.Duration) time.Duration {
	if maxAge <= 0 {
		return s.cfg.JWKSRefreshInterval
	}
	return min(max(maxAge, s.cfg.JWKSMinRefreshInterval), s.cfg.JWKSMaxRefreshInterval)
}

// fetch downloads and parses the JWKS. It returns the max-age from
// Cache-Control, 0 when absent.
func (s *jwksSource) fetch(base context.Context) ([]*verificationKey, time.Duration, error) {
	ctx, cancel := context.WithTimeout(base, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("unexpected HTTP status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read body: %w", err)
	}
	if len(body) > MaxJWKSBytes {
		return nil, 0, fmt.Errorf("response is larger than %d bytes", MaxJWKSBytes)
	}

	obj, err := decodeObject(body)
	if err != nil {
		return nil, 0, fmt.Errorf("invalid JWKS: %w", err)
	}
	keys, skipped, err := parseJWKS(obj, false)
	if err != nil {
		return nil, 0, fmt.Errorf("invalid JWKS: %w", err)
	}
	for _, e := range skipped {
		s.log.Debug("jwks key skipped", "issuer", s.issuer, "error", e)
	}
	if len(keys) == 0 {
		return nil, 0, errors.New("JWKS contains no usable signature key")
	}
	keys, err = withAlgorithms(keys, nil)
	if err != nil {
		return nil, 0, err
	}
	return keys, cacheMaxAge(resp.Header.Get("Cache-Control")), nil
}

// cacheMaxAge returns the max-age directive of a Cache-Control header, 0
// when absent, invalid or combined with no-cache or no-store.
func cacheMaxAge(header string) time.Duration {
	var maxAge time.Duration
	for _, directive := range strings.Split(header, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch strings.ToLower(name) {
		case "no-cache", "no-store":
			return 0
		case "max-age":
			secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64)
			if err != nil || secs < 0 || secs > int64(24*time.Hour/time.Second) {
				continue
			}
			maxAge = time.Duration(secs) * time.Second
		}
	}
	return maxAge
}

// run refreshes the key set until ctx ends: after each fetch it waits for
// the delay the fetch set (max-age, refresh interval or, after a failure,
// the minimum interval).
func (s *jwksSource) run(ctx context.Context) {
	for {
		s.mu.Lock()
		delay := s.nextDelay
		s.mu.Unlock()
		if delay <= 0 {
			delay = s.cfg.JWKSMinRefreshInterval
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if done := s.refresh(ctx); done != nil {
			select {
			case <-done:
			case <-ctx.Done():
				return
			}
		}
	}
}

// status returns nil when the last fetch succeeded.
func (s *jwksSource) status() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.loaded && s.lastErr != nil:
		return fmt.Errorf("issuer %s: no JWKS loaded yet: %w", s.issuer, s.lastErr)
	case !s.loaded:
		return fmt.Errorf("issuer %s: no JWKS loaded yet", s.issuer)
	case s.lastErr != nil:
		return fmt.Errorf("issuer %s: %w: last fetch failed: %w", s.issuer, ErrKeysStale, s.lastErr)
	}
	return nil
}
