package pdp

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"
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

// ParseTarget normalizes a raw request target as every gateway front door
// receives it: origin form ("/a/b?q=1") or absolute form ("https://host/a/b?q=1").
//
// The steps, in order:
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
//     ("%2F") splits it into more segments, as OPA's Envoy plugin does;
//   - a ";" path parameter is cut from each segment ("admin;jsessionid=1"
//     is "admin"), as Java servlet containers do before routing.
//
// Upstream servers disagree on some spellings, so that the PDP could check
// one path while the upstream serves another. ParseTarget returns
// ErrInvalidPath for those, and for malformed percent-encoding:
//   - a "#" (a request target never carries a fragment, and some servers
//     resolve dot-segments after it);
//   - a NUL byte or a decoded segment that is not valid UTF-8 (overlong
//     encodings of "." and "/");
//   - a decoded segment that still holds a percent-escape (double
//     encoding, which some servers decode twice);
//   - a dot-segment spelled so that a plain reading does not resolve it:
//     encoded ("%2E%2E", "..%2F"), with a path parameter ("..;x") or
//     between backslashes ("..\", which Windows servers treat as "/");
//   - a segment ending in a dot or a space, which Windows servers strip.
//
// Callers keep the raw target beside the result, so policies can see both.
func ParseTarget(raw string) (ParsedTarget, error) {
	if strings.IndexByte(raw, '#') >= 0 {
		return ParsedTarget{}, ErrInvalidPath
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
		decoded, err := decodeSegment(rawSegment)
		if err != nil {
			return ParsedTarget{}, err
		}
		for _, s := range strings.Split(decoded, "/") {
			if hiddenDotSegment(s) {
				return ParsedTarget{}, ErrInvalidPath
			}
			s, _, _ = strings.Cut(s, ";")
			if strings.HasSuffix(s, ".") || strings.HasSuffix(s, " ") {
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

// decodeSegment percent-decodes one raw segment and rejects results that
// upstream servers may read differently: NUL bytes, invalid UTF-8 and a
// percent-escape left after decoding.
func decodeSegment(raw string) (string, error) {
	decoded, err := url.PathUnescape(raw)
	if err != nil || strings.ContainsRune(decoded, 0) || !utf8.ValidString(decoded) {
		return "", ErrInvalidPath
	}
	if strings.IndexByte(raw, '%') >= 0 && hasPercentEscape(decoded) {
		return "", ErrInvalidPath
	}
	return decoded, nil
}

// hasPercentEscape reports whether s contains "%" followed by two hex
// digits.
func hasPercentEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
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
