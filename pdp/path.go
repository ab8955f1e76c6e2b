package pdp

import (
	"errors"
	"net/url"
	"strings"
)

// ErrInvalidPath is returned for a request target that cannot be decoded.
var ErrInvalidPath = errors.New("invalid request path")

// ParsedTarget is a request target split into normalized path segments and
// query parameters. Every front door uses the same normalization, so a rule
// on a segment cannot be bypassed by encoding it differently.
type ParsedTarget struct {
	// Segments are the path segments after percent-decoding, with empty
	// segments and "." removed and ".." resolved. An encoded slash (%2F)
	// splits a segment, as OPA's Envoy plugin does.
	Segments []string
	// Query holds the query parameters with their values in order.
	Query map[string][]string
}

// Path returns the normalized path, "/" joined, with a leading slash.
func (t ParsedTarget) Path() string {
	return "/" + strings.Join(t.Segments, "/")
}

// ParseTarget normalizes a raw request target (path, optional query and
// fragment). It returns ErrInvalidPath for malformed percent-encoding or a
// NUL byte.
func ParseTarget(raw string) (ParsedTarget, error) {
	if i := strings.IndexByte(raw, '#'); i >= 0 {
		raw = raw[:i]
	}
	rawPath, rawQuery, _ := strings.Cut(raw, "?")

	decoded, err := url.PathUnescape(rawPath)
	if err != nil || strings.ContainsRune(decoded, 0) {
		return ParsedTarget{}, ErrInvalidPath
	}

	segments := make([]string, 0, strings.Count(decoded, "/")+1)
	for _, s := range strings.Split(decoded, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segments) > 0 {
				segments = segments[:len(segments)-1]
			}
		default:
			segments = append(segments, s)
		}
	}

	query, _ := url.ParseQuery(rawQuery)
	if query == nil {
		query = url.Values{}
	}
	return ParsedTarget{Segments: segments, Query: query}, nil
}
