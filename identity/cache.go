package identity

import (
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/authgate/pdp/pdp"
)

// tokenCache holds verified tokens, keyed by the SHA-256 of the whole
// token string so that the cache never stores a token.
type tokenCache struct {
	lru *lru.Cache[[32]byte, *cacheEntry]
}

// cacheEntry is one verified token. It is used only before expiresAt and
// while the issuer's key set has the generation it was verified with, so a
// key removed from the JWKS also retires the tokens it signed.
type cacheEntry struct {
	issuer     *issuer
	identity   *pdp.Identity
	expiresAt  time.Time
	generation uint64
}

func newTokenCache(maxEntries int) (*tokenCache, error) {
	c, err := lru.New[[32]byte, *cacheEntry](maxEntries)
	if err != nil {
		return nil, fmt.Errorf("token cache: %w", err)
	}
	return &tokenCache{lru: c}, nil
}

func (c *tokenCache) get(digest [32]byte, now time.Time) (*cacheEntry, bool) {
	entry, ok := c.lru.Get(digest)
	if !ok {
		return nil, false
	}
	if !now.Before(entry.expiresAt) || entry.issuer.keys.Load().generation != entry.generation {
		c.lru.Remove(digest)
		return nil, false
	}
	return entry, true
}

func (c *tokenCache) add(digest [32]byte, entry *cacheEntry) {
	c.lru.Add(digest, entry)
}
