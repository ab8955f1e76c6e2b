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

// ParseTarget normalizes a raw request target as every front door sees it:
// origin form ("/a/b?q=1") or absolute form ("https://host/a/b?q=1").
//
// The steps, in order:
//   - a fragment ("#..."), which clients should never send, is dropped;
//   - the query string is split off at the first "?" and parsed with
//     url.ParseQuery: "+" is a space, pairs that fail to decode are skipped,
//     repeated keys keep their values in order;
//   - in absolute form the scheme and authority are dropped, so
//     "http://host/admin" yields the segments of "/admin";
//   - the raw path is split on "/"; empty segments (duplicate slashes) and
//     "." are removed, and ".." removes the segment before it (never above
//     the root), as RFC 3986 section 5.2.4 does and as NGINX and upstream
//     servers do before routing;
//   - each remaining segment is percent-decoded once; an encoded slash
//     ("%2F") splits it into more segments, as OPA's Envoy plugin does.
//
// It returns ErrInvalidPath for malformed percent-encoding, a NUL byte, and
// every spelling of a dot-segment that upstream servers may resolve while a
// plain reading does not: an encoded one ("%2E%2E", "..%2F"), one followed
// by path parameters ("..;x", resolved by Java servlet containers) and one
// between backslashes ("..\", resolved by Windows servers). Resolving them
// here could make the PDP check one path while the upstream serves another,
// so they are rejected instead.
//
// Callers keep the raw target beside the result, so policies can see both.
func ParseTarget(raw string) (ParsedTarget, error) {
	if i := strings.IndexByte(raw, '#'); i >= 0 {
		raw = raw[:i]
	}
	rawPath, rawQuery, _ := strings.Cut(raw, "?")
	rawPath = stripSchemeAndAuthority(rawPath)

	segments := make([]string, 0, strings.Count(rawPath, "/")+1)
	for _, rawSegment := range strings.Split(rawPath, "/") {
		switch rawSegment {
		case "", ".":
			continue
		case "..":
			if len(segments) > 0 {
				segments = segments[:len(segments)-1]
			}
			continue
		}
		decoded, err := url.PathUnescape(rawSegment)
		if err != nil || strings.ContainsRune(decoded, 0) {
			return ParsedTarget{}, ErrInvalidPath
		}
		for _, s := range strings.Split(decoded, "/") {
			if hiddenDotSegment(s) {
				return ParsedTarget{}, ErrInvalidPath
			}
			if s != "" {
				segments = append(segments, s)
			}
		}
	}

	// A pair that fails to decode is skipped, as OPA's Envoy plugin does
	// with url.URL.Query; the raw query stays visible in the input.
	query, _ := url.ParseQuery(rawQuery)
	if query == nil {
		query = url.Values{}
	}
	return ParsedTarget{Segments: segments, Query: query}, nil
}

// hiddenDotSegment reports whether a decoded segment is, or may be read by
// an upstream server as, "." or "..": the segment itself, its part before
// a ";" path parameter, or any part between backslashes.
func hiddenDotSegment(s string) bool {
	base, _, _ := strings.Cut(s, ";")
	for _, part := range strings.Split(base, "\\") {
		if part == "." || part == ".." {
			return true
		}
	}
	return false
}

// stripSchemeAndAuthority returns the path of an absolute-form target
// (RFC 9112 section 3.2.2) and any other target unchanged. Without it,
// "http://host/admin" would yield the segments "http:", "host", "admin" and
// a rule on the first segment would not see "admin".
func stripSchemeAndAuthority(p string) string {
	i := strings.Index(p, "://")
	if i <= 0 || !isScheme(p[:i]) {
		return p
	}
	rest := p[i+len("://"):]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		return rest[j:]
	}
	return "/"
}

// isScheme reports whether s is a URI scheme: a letter followed by letters,
// digits, "+", "-" or "." (RFC 3986 section 3.1).
func isScheme(s string) bool {
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}
