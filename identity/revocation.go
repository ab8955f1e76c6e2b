package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authgate/pdp/pdp"
)

// RevocationKind names what a revocation matches.
type RevocationKind string

// Revocation kinds.
const (
	// RevokeTokenID matches tokens by their jti claim.
	RevokeTokenID RevocationKind = "jti"
	// RevokeSubject matches every token of a subject (sub claim).
	RevokeSubject RevocationKind = "subject"
	// RevokeKeyID matches every token signed with a key id (kid header).
	RevokeKeyID RevocationKind = "key_id"
)

// ErrInvalidRevocation marks a revocation request that is malformed.
var ErrInvalidRevocation = errors.New("invalid revocation")

// Redis keys of the shared revocation list. The hash tag keeps both keys in
// one Redis Cluster slot, so they can change in one transaction.
const (
	redisRevocationsKey = "pdp:{identity}:revocations"
	redisVersionKey     = "pdp:{identity}:revocations:version"
)

// errorLogInterval rate-limits the warning for a failing revocation sync.
const errorLogInterval = time.Minute

// Revocation denies matching credentials with token.revoked until it
// expires.
type Revocation struct {
	Kind  RevocationKind `json:"kind"`
	Value string         `json:"value"`
	// Issuer is the configured issuer name the revocation applies to; empty
	// applies it to every issuer.
	Issuer    string    `json:"issuer,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	// CreatedAt is when AddRevocation (or Revoke) stored the revocation,
	// in UTC. A value set by the caller is replaced.
	CreatedAt time.Time `json:"created_at"`
}

func (r Revocation) validate(now time.Time) error {
	switch r.Kind {
	case RevokeTokenID, RevokeSubject, RevokeKeyID:
	default:
		return fmt.Errorf("%w: kind %q is not one of jti, subject, key_id", ErrInvalidRevocation, r.Kind)
	}
	if r.Value == "" {
		return fmt.Errorf("%w: value is empty", ErrInvalidRevocation)
	}
	if !r.ExpiresAt.After(now) {
		return fmt.Errorf("%w: expires_at %s is not in the future", ErrInvalidRevocation,
			r.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// revocationKey identifies one revocation; a later Revoke with the same key
// replaces the earlier one.
type revocationKey struct {
	kind   RevocationKind
	issuer string
	value  string
}

// field is the Redis hash field for the key.
func (k revocationKey) field() string {
	b, _ := json.Marshal([]string{string(k.kind), k.issuer, k.value})
	return string(b)
}

// revocationSet is an immutable snapshot that the hot path reads without
// locks or network calls.
type revocationSet map[revocationKey]Revocation

// match returns the revocation that applies to a token of the issuer named
// issuerName with identity id.
func (s revocationSet) match(issuerName string, id *pdp.Identity, now time.Time) (Revocation, bool) {
	if len(s) == 0 {
		return Revocation{}, false
	}
	checks := []struct {
		kind  RevocationKind
		value string
	}{{RevokeTokenID, id.TokenID}, {RevokeSubject, id.Subject}, {RevokeKeyID, id.KeyID}}
	for _, c := range checks {
		if c.value == "" {
			continue
		}
		for _, scope := range []string{issuerName, ""} {
			r, ok := s[revocationKey{c.kind, scope, c.value}]
			if ok && now.Before(r.ExpiresAt) {
				return r, true
			}
		}
	}
	return Revocation{}, false
}

// revocations keeps the local revocation set, in memory only or synced
// from Redis by polling a version counter.
type revocations struct {
	redis redis.UniversalClient
	cfg   RevocationConfig
	log   *slog.Logger

	set atomic.Pointer[revocationSet]
	// mu serializes writers of set.
	mu sync.Mutex
	// lastSync is the wall-clock time of the last successful sync, in Unix
	// nanoseconds; 0 before the first one.
	lastSync   atomic.Int64
	version    string
	lastErrLog time.Time
	suppressed int
}

func newRevocations(client redis.UniversalClient, cfg RevocationConfig, log *slog.Logger) *revocations {
	r := &revocations{redis: client, cfg: cfg, log: log}
	empty := revocationSet{}
	r.set.Store(&empty)
	return r
}

func (r *revocations) shared() bool { return r.redis != nil }

// current returns the local set, or an error when shared revocations were
// not synced within MaxStaleness: a replica that cannot see revocations
// must not accept tokens.
func (r *revocations) current() (revocationSet, error) {
	if err := r.fresh(); err != nil {
		return nil, err
	}
	return *r.set.Load(), nil
}

func (r *revocations) fresh() error {
	if r.redis == nil {
		return nil
	}
	last := r.lastSync.Load()
	if last == 0 {
		return errors.New("revocations: no successful sync from Redis yet")
	}
	age := time.Since(time.Unix(0, last))
	if age > r.cfg.MaxStaleness {
		return fmt.Errorf("revocations: last sync from Redis was %s ago, the limit is %s",
			age.Round(time.Millisecond), r.cfg.MaxStaleness)
	}
	return nil
}

// add stores rev in Redis (when shared) and in the local set.
func (r *revocations) add(ctx context.Context, rev Revocation) error {
	key := revocationKey{rev.Kind, rev.Issuer, rev.Value}
	if r.redis != nil {
		data, err := json.Marshal(rev)
		if err != nil {
			return err
		}
		_, err = r.redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, redisRevocationsKey, key.field(), data)
			p.Incr(ctx, redisVersionKey)
			return nil
		})
		if err != nil {
			return fmt.Errorf("store revocation in Redis: %w", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := revocationSet{}
	for k, v := range *r.set.Load() {
		next[k] = v
	}
	next[key] = rev
	r.set.Store(&next)
	return nil
}

// list returns the unexpired revocations, read from Redis when shared.
func (r *revocations) list(ctx context.Context, now time.Time) ([]Revocation, error) {
	set := *r.set.Load()
	if r.redis != nil {
		var err error
		if set, err = r.load(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]Revocation, 0, len(set))
	for _, rev := range set {
		if now.Before(rev.ExpiresAt) {
			out = append(out, rev)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// load reads the whole shared list from Redis and drops expired entries
// from it.
func (r *revocations) load(ctx context.Context) (revocationSet, error) {
	fields, err := r.redis.HGetAll(ctx, redisRevocationsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("read revocations from Redis: %w", err)
	}
	now := time.Now()
	set := revocationSet{}
	var expired []string
	for field, data := range fields {
		var rev Revocation
		if err := json.Unmarshal([]byte(data), &rev); err != nil {
			r.log.Warn("revocation entry ignored", "field", field, "error", err)
			continue
		}
		if !now.Before(rev.ExpiresAt) {
			expired = append(expired, field)
			continue
		}
		set[revocationKey{rev.Kind, rev.Issuer, rev.Value}] = rev
	}
	if len(expired) > 0 {
		// Removing expired entries is housekeeping; a failure only delays it.
		_ = r.redis.HDel(ctx, redisRevocationsKey, expired...).Err()
	}
	return set, nil
}

// sync reads the version counter and reloads the list when it changed.
//
// NOTE: Redis is the only shared copy. After a restart without persistence
// the version key is gone, so replicas reload an empty list and forget
// every revocation.
func (r *revocations) sync(ctx context.Context) error {
	if r.redis == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.SyncInterval)
	defer cancel()
	version, err := r.redis.Get(ctx, redisVersionKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read revocation version from Redis: %w", err)
	}
	if version != r.version || r.lastSync.Load() == 0 {
		set, err := r.load(ctx)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.set.Store(&set)
		r.mu.Unlock()
		r.version = version
	}
	r.lastSync.Store(time.Now().UnixNano())
	return nil
}

// run syncs every SyncInterval until ctx ends. Failures are logged at most
// once per errorLogInterval; the staleness check in current makes tokens
// fail closed once syncs have failed for MaxStaleness.
func (r *revocations) run(ctx context.Context) {
	ticker := time.NewTicker(r.cfg.SyncInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		err := r.sync(ctx)
		if err == nil || ctx.Err() != nil {
			continue
		}
		if time.Since(r.lastErrLog) >= errorLogInterval {
			r.log.Warn("revocation sync failed", "error", err, "suppressed", r.suppressed)
			r.lastErrLog = time.Now()
			r.suppressed = 0
		} else {
			r.suppressed++
		}
	}
}
