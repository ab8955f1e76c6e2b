package bundles

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"strings"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
)

// decisionCache holds results of one revision by a hash of the query and
// of the input parts the query can read (see inputDeps). It belongs to
// one revision, so a new bundle starts with an empty cache. Results are
// shared between callers and must not be modified.
type decisionCache struct {
	entries *lru.Cache[[sha256.Size]byte, cachedResult]
	stats   *CacheStats
}

// CacheStats counts decision cache lookups over every revision.
type CacheStats struct {
	// Hits are results served from the cache; Misses are evaluations
	// whose result was then cached. Queries whose rules cannot be cached
	// count in neither.
	Hits, Misses atomic.Uint64
}

type cachedResult struct {
	value   any
	defined bool
}

// newDecisionCache returns a cache of size entries counting into stats,
// or nil for size < 1.
func newDecisionCache(size int, stats *CacheStats) (*decisionCache, error) {
	if size < 1 {
		return nil, nil
	}
	entries, err := lru.New[[sha256.Size]byte, cachedResult](size)
	if err != nil {
		return nil, err
	}
	return &decisionCache{entries: entries, stats: stats}, nil
}

// maxCachedResult bounds the estimated size of one cached result, so that
// a full cache stays small: a query for a large data document (GET
// /v1/data on a big bundle) is evaluated each time instead of copied into
// thousands of entries. The shipped policy's decision is well under 1 KB.
const maxCachedResult = 8 << 10

// cloneWithin returns a deep copy of a result with every string copied.
// It returns false, and stops walking, once the result's estimated size in
// memory is over budget bytes. The copy matters because
// a small result can share memory with a large input (OPA's substring
// returns part of its argument's string), and a cached result must not
// keep that input alive.
func cloneWithin(v any, budget int) (any, bool) {
	var clone func(v any) any
	clone = func(v any) any {
		budget -= 16
		if budget < 0 {
			return nil
		}
		switch x := v.(type) {
		case string:
			budget -= len(x)
			return strings.Clone(x)
		case json.Number:
			budget -= len(x)
			return json.Number(strings.Clone(string(x)))
		case []any:
			out := make([]any, len(x))
			for i, item := range x {
				if out[i] = clone(item); budget < 0 {
					return nil
				}
			}
			return out
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, item := range x {
				budget -= len(k) + 32
				if out[strings.Clone(k)] = clone(item); budget < 0 {
					return nil
				}
			}
			return out
		}
		return v
	}
	out := clone(v)
	return out, budget >= 0
}

// Tags in a cache key, one before each value slot: a value follows tagValue,
// and the other tags stand alone. A path used only in a bare or negated
// expression records undefined, false or any other value. Keeping undefined
// and false apart costs at most one extra entry.
const (
	tagValue     = 'v'
	tagUndefined = 'u'
	tagFalse     = 'f'
	tagOther     = 't'
)

// key hashes the query and the parts of input that deps names. Every
// string is length-prefixed and every value slot starts with a tag, so two
// different inputs cannot produce the same byte stream.
func (d *inputDeps) key(query string, input ast.Value) [sha256.Size]byte {
	buf := make([]byte, 0, 512)
	field := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	field(query)
	switch {
	case input == nil:
		buf = append(buf, tagUndefined)
	case d.whole:
		buf = append(buf, tagValue)
		field(input.String())
	default:
		for _, path := range d.values {
			field(path.String())
			if v, ok := lookup(input, path); ok {
				buf = append(buf, tagValue)
				field(v.String())
			} else {
				buf = append(buf, tagUndefined)
			}
		}
		for _, path := range d.truths {
			field(path.String())
			v, ok := lookup(input, path)
			switch {
			case !ok:
				buf = append(buf, tagUndefined)
			case v.Compare(ast.InternedTerm(false).Value) == 0:
				buf = append(buf, tagFalse)
			default:
				buf = append(buf, tagOther)
			}
		}
	}
	return sha256.Sum256(buf)
}

// lookup follows path through objects, arrays and sets as a Rego
// reference would.
func lookup(v ast.Value, path ast.Ref) (ast.Value, bool) {
	for _, key := range path {
		switch x := v.(type) {
		case ast.Object:
			t := x.Get(key)
			if t == nil {
				return nil, false
			}
			v = t.Value
		case *ast.Array:
			n, ok := key.Value.(ast.Number)
			if !ok {
				return nil, false
			}
			i, ok := n.Int()
			if !ok || i < 0 || i >= x.Len() {
				return nil, false
			}
			v = x.Elem(i).Value
		case ast.Set:
			if !x.Contains(key) {
				return nil, false
			}
			v = key.Value
		default:
			return nil, false
		}
	}
	return v, true
}
