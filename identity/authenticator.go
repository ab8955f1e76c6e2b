package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authgate/pdp/pdp"
)

// ErrKeysStale marks a Ready error for an issuer whose JWKS endpoint
// failed while the last good key set is still in use: tokens are verified,
// but key rotations are not seen.
var ErrKeysStale = errors.New("JWKS endpoint unavailable, using the last good key set")

// Options are the runtime dependencies of an Authenticator.
type Options struct {
	Logger *slog.Logger
	// Redis shares revocations between replicas; nil keeps them in memory.
	Redis redis.UniversalClient
	// Now returns the time tokens are checked against; nil means time.Now.
	Now func() time.Time
	// OnJWKSRefresh, when not nil, receives each JWKS fetch attempt: the
	// issuer's configured name and the fetch error, nil on success. A
	// transport error names the JWKS URL, with any password masked by
	// net/http. It runs on the fetch goroutine before callers waiting for
	// that fetch resume, so it must be quick.
	OnJWKSRefresh func(issuer string, err error)
}

// Authenticator verifies bearer tokens and mTLS peers. It implements
// pdp.Authenticator and is safe for concurrent use.
type Authenticator struct {
	cfg         Config
	log         *slog.Logger
	now         func() time.Time
	onRefresh   func(issuer string, err error)
	issuers     []*issuer
	byIss       map[string]*issuer
	byName      map[string]*issuer
	maxSize     int
	cache       *tokenCache
	revocations *revocations

	startOnce sync.Once
	stopOnce  sync.Once
	cancel    context.CancelFunc
	base      context.Context
	wg        sync.WaitGroup
}

var _ pdp.Authenticator = (*Authenticator)(nil)

// issuer is one configured issuer with its current key set.
type issuer struct {
	cfg    *IssuerConfig
	static []*verificationKey
	remote *jwksSource
	keys   atomic.Pointer[keySet]
	mu     sync.Mutex
}

// keySet is an immutable snapshot of an issuer's keys. generation changes
// whenever the keys change, which invalidates cached tokens of the issuer.
type keySet struct {
	generation  uint64
	keys        []*verificationKey
	byID        map[string][]*verificationKey
	fingerprint string
}

// New validates cfg, loads static keys and secrets, and wires the
// Authenticator. Remote key sets are fetched by Start.
func New(cfg Config, opts Options) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("identity config: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Authenticator{
		cfg:       cfg,
		log:       opts.Logger,
		now:       opts.Now,
		onRefresh: opts.OnJWKSRefresh,
		byIss:     map[string]*issuer{},
		byName:    map[string]*issuer{},
	}
	a.base, a.cancel = context.WithCancel(context.Background())

	var errs []error
	for i := range a.cfg.Issuers {
		iss, err := a.newIssuer(&a.cfg.Issuers[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("issuers[%d] (%s): %w", i, a.cfg.Issuers[i].Name, err))
			continue
		}
		a.issuers = append(a.issuers, iss)
		a.byIss[iss.cfg.Issuer] = iss
		a.byName[iss.cfg.Name] = iss
		a.maxSize = max(a.maxSize, iss.cfg.MaxTokenSize)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	if !cfg.Cache.Disabled {
		cache, err := newTokenCache(cfg.Cache.MaxEntries)
		if err != nil {
			return nil, err
		}
		a.cache = cache
	}
	a.revocations = newRevocations(opts.Redis, cfg.Revocation, a.log)
	return a, nil
}

func (a *Authenticator) newIssuer(cfg *IssuerConfig) (*issuer, error) {
	static, err := loadStaticKeys(cfg.Keys)
	if err != nil {
		return nil, err
	}
	iss := &issuer{cfg: cfg, static: static}
	iss.publish(nil)
	if cfg.JWKSURL != "" {
		iss.remote, err = newJWKSSource(cfg, a.log, iss.publish, a.onRefresh)
		if err != nil {
			return nil, err
		}
	}
	return iss, nil
}

// publish installs static plus remote keys as the issuer's key set. The
// generation changes only when the key material or algorithms changed.
func (iss *issuer) publish(remote []*verificationKey) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	all := append(slices.Clone(iss.static), remote...)
	fp := ""
	for _, k := range all {
		fp += k.fingerprint
	}
	prev := iss.keys.Load()
	if prev != nil && prev.fingerprint == fp {
		return
	}
	set := &keySet{keys: all, byID: map[string][]*verificationKey{}, fingerprint: fp}
	if prev != nil {
		set.generation = prev.generation + 1
	}
	for _, k := range all {
		set.byID[k.id] = append(set.byID[k.id], k)
	}
	iss.keys.Store(set)
}

// Start fetches every remote JWKS once, waiting at most until ctx ends,
// reads the shared revocation list, and starts the refresh loops. A failed
// fetch does not fail Start: it is logged, retried and reported by Ready.
func (a *Authenticator) Start(ctx context.Context) error {
	started := false
	a.startOnce.Do(func() { started = true })
	if !started {
		return errors.New("identity: Start called twice")
	}

	var pending []<-chan struct{}
	for _, iss := range a.issuers {
		if iss.remote == nil {
			continue
		}
		if done := iss.remote.refresh(a.base); done != nil {
			pending = append(pending, done)
		}
	}
	for _, done := range pending {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := a.revocations.sync(ctx); err != nil {
		a.log.Warn("revocation sync failed", "error", err)
	}

	for _, iss := range a.issuers {
		if iss.remote == nil {
			continue
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			iss.remote.run(a.base)
		}()
	}
	if a.revocations.shared() {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.revocations.run(a.base)
		}()
	}
	a.log.Info("identity started", "issuers", len(a.issuers), "shared_revocations", a.revocations.shared())
	return nil
}

// Stop ends the refresh loops and waits for them. It is idempotent.
func (a *Authenticator) Stop() {
	a.stopOnce.Do(func() {
		a.cancel()
		a.wg.Wait()
		a.log.Info("identity stopped")
	})
}

// Ready returns nil when every issuer has keys, every JWKS endpoint
// served its last fetch, and shared revocations are fresh. An error that
// wraps ErrKeysStale means tokens are still verified with the last good
// key set.
func (a *Authenticator) Ready() error {
	var errs []error
	for _, iss := range a.issuers {
		if iss.remote != nil {
			if err := iss.remote.status(); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if len(iss.keys.Load().keys) == 0 {
			errs = append(errs, fmt.Errorf("issuer %s: no verification keys", iss.cfg.Name))
		}
	}
	if err := a.revocations.fresh(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Revoke adds r to the revocation list, as AddRevocation does, for callers
// that do not need the stored revocation.
func (a *Authenticator) Revoke(ctx context.Context, r Revocation) error {
	_, err := a.AddRevocation(ctx, r)
	return err
}

// AddRevocation validates r, sets its CreatedAt to the current time and
// adds it to the revocation list, where it replaces an earlier revocation
// with the same kind, issuer and value. It returns the revocation as
// stored. With Redis, every replica applies it within one sync interval.
// An error that wraps ErrInvalidRevocation means r itself is invalid.
func (a *Authenticator) AddRevocation(ctx context.Context, r Revocation) (Revocation, error) {
	if err := r.validate(a.now()); err != nil {
		return Revocation{}, err
	}
	if r.Issuer != "" && a.byName[r.Issuer] == nil {
		return Revocation{}, fmt.Errorf("%w: issuer %q is not configured", ErrInvalidRevocation, r.Issuer)
	}
	r.CreatedAt = a.now().UTC()
	if err := a.revocations.add(ctx, r); err != nil {
		return Revocation{}, err
	}
	a.log.Info("credential revoked", "kind", r.Kind, "value", r.Value, "issuer", r.Issuer,
		"expires_at", r.ExpiresAt)
	return r, nil
}

// Revocations lists the revocations that have not expired.
func (a *Authenticator) Revocations(ctx context.Context) ([]Revocation, error) {
	return a.revocations.list(ctx, a.now())
}
