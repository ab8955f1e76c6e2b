package pdp

import (
	"fmt"
	"strings"
)

// Route selects the mandatory checks for a class of requests. A request
// matches a route when every non-empty selector matches; the first matching
// route in configuration order wins.
type Route struct {
	// Name identifies the route in logs, metrics and audit records.
	Name string `yaml:"name"`
	// Hosts are exact host names or "*.suffix" wildcards; empty matches any.
	Hosts []string `yaml:"hosts"`
	// Methods are HTTP methods or direct-API action names; empty matches any.
	Methods []string `yaml:"methods"`
	// Paths are patterns over normalized path segments: "*" matches one
	// segment and a trailing "**" matches any rest, including none.
	Paths []string `yaml:"paths"`

	Token   TokenRequirement   `yaml:"token"`
	MTLS    MTLSRequirement    `yaml:"mtls"`
	Message MessageRequirement `yaml:"message"`
}

// TokenRequirement is the bearer token rule of a route.
type TokenRequirement struct {
	// Required denies with token.missing when no token is present.
	Required bool `yaml:"required"`
	// Issuers names the configured issuers whose tokens are accepted; empty
	// accepts any configured issuer. A token that is present is always
	// verified, required or not.
	Issuers []string `yaml:"issuers"`
}

// MTLSRequirement is the client certificate rule of a route.
type MTLSRequirement struct {
	// Required denies with identity.missing when the caller has no verified
	// certificate or gateway-asserted principal.
	Required bool `yaml:"required"`
	// Allowed lists SPIFFE IDs or certificate subjects that may call; empty
	// allows any verified peer.
	Allowed []string `yaml:"allowed"`
}

// MessageRequirement is the signed backchannel message rule of a route.
type MessageRequirement struct {
	// Required denies with signature.missing when the request carries no
	// signed message.
	Required bool `yaml:"required"`
	// Senders names the configured senders whose signatures are accepted;
	// empty accepts any configured sender.
	Senders []string `yaml:"senders"`
	// Type names the message type whose JSON Schema the envelope must match;
	// empty skips schema validation.
	Type string `yaml:"type"`
}

// Validate reports problems with the route's selectors.
func (r Route) Validate() error {
	for _, p := range r.Paths {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("route %q: path pattern %q must start with /", r.Name, p)
		}
		segs := splitPattern(p)
		for i, s := range segs {
			if s == "**" && i != len(segs)-1 {
				return fmt.Errorf("route %q: path pattern %q: ** is only allowed last", r.Name, p)
			}
		}
	}
	return nil
}

// matches reports whether the route applies to a request with the given
// host, method (upper case) and normalized path segments.
func (r *Route) matches(host, method string, segments []string) bool {
	if len(r.Hosts) > 0 && !matchAny(r.Hosts, host, matchHost) {
		return false
	}
	if len(r.Methods) > 0 && !matchAny(r.Methods, method, strings.EqualFold) {
		return false
	}
	if len(r.Paths) == 0 {
		return true
	}
	for _, p := range r.Paths {
		if matchPath(splitPattern(p), segments) {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, value string, match func(pattern, value string) bool) bool {
	for _, p := range patterns {
		if match(p, value) {
			return true
		}
	}
	return false
}

// matchHost compares case-insensitively, ignoring a port on the value.
func matchHost(pattern, host string) bool {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.ToLower(host)
	pattern = strings.ToLower(pattern)
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(host, "."+suffix)
	}
	return host == pattern
}

func splitPattern(p string) []string {
	trimmed := strings.Trim(p, "/")
	if trimmed == "" {
		return nil
	}
	return strings.Split(trimmed, "/")
}

func matchPath(pattern, segments []string) bool {
	for i, p := range pattern {
		if p == "**" {
			return true
		}
		if i >= len(segments) {
			return false
		}
		if p != "*" && p != segments[i] {
			return false
		}
	}
	return len(pattern) == len(segments)
}
