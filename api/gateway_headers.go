package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/authgate/pdp/identity"
	"github.com/authgate/pdp/pdp"
)

// headerField is one header to send, in order.
type headerField struct {
	name  string
	value string
}

// upstreamChanges are the request changes a gateway applies on allow.
type upstreamChanges struct {
	// set are headers that replace any value the client sent. Repeated
	// names carry several values, the first replacing and the rest appended.
	set []headerField
	// remove are headers stripped from the upstream request: the policy's
	// request_headers_to_remove and every identity header with no value.
	remove []string
	// responseAdd are headers added to the upstream's response.
	responseAdd []headerField
	// querySet and queryRemove rewrite the upstream query string (Envoy
	// gRPC only, as OPA's Envoy plugin supports them).
	querySet    []headerField
	queryRemove []string
}

// managedHeaders returns the lower-cased identity header names the PDP
// owns; "-" entries are skipped.
func (c *Config) managedHeaders() []string {
	h := c.IdentityHeaders
	configured := []string{h.Subject, h.Tenant, h.Issuer, h.SpiffeID, h.DecisionID}
	defaults := []string{DefaultSubjectHeader, DefaultTenantHeader, DefaultIssuerHeader,
		DefaultSpiffeIDHeader, DefaultDecisionIDHeader}
	var names []string
	for i, n := range configured {
		// "-" turns a header off: the PDP never sets it, but a client must
		// still not pass the default name upstream, where an application may
		// read it.
		if n == "-" || n == "" {
			n = defaults[i]
		}
		names = append(names, n)
	}
	return names
}

// allowChanges computes the upstream changes of an allow decision. Policy
// headers whose names are identity headers are dropped, so only the PDP
// sets those: from the verified identity, or removed when it has no value.
// It returns an error for a malformed query_parameters_* field.
func (c *Config) allowChanges(d *pdp.Decision) (upstreamChanges, error) {
	var ch upstreamChanges
	managed := map[string]bool{}
	for _, n := range c.managedHeaders() {
		managed[n] = true
	}

	for _, name := range d.Headers.Names() {
		if managed[strings.ToLower(name)] {
			continue
		}
		for _, v := range d.Headers[name] {
			ch.set = append(ch.set, headerField{name, v})
		}
	}
	sent := map[string]bool{}
	for _, f := range c.identityFields(d) {
		if f.value == "" {
			continue
		}
		ch.set = append(ch.set, f)
		sent[f.name] = true
	}
	// Every identity header the PDP does not set now, turned-off defaults
	// included, is removed from the client's request.
	for _, name := range c.managedHeaders() {
		if !sent[name] {
			ch.remove = append(ch.remove, name)
		}
	}
	for _, name := range d.RequestHeadersToRemove {
		if !managed[strings.ToLower(name)] {
			ch.remove = append(ch.remove, name)
		}
	}
	for _, name := range d.ResponseHeadersToAdd.Names() {
		for _, v := range d.ResponseHeadersToAdd[name] {
			ch.responseAdd = append(ch.responseAdd, headerField{name, v})
		}
	}

	var err error
	if ch.querySet, ch.queryRemove, err = queryChanges(d.Result); err != nil {
		return upstreamChanges{}, err
	}
	return ch, nil
}

// identityFields returns each configured identity header with its value
// from the verified identity, "" when unknown or unverified.
func (c *Config) identityFields(d *pdp.Decision) []headerField {
	h := c.IdentityHeaders
	var subject, tenant, issuer, spiffeID string
	if id := d.Identity; id != nil && id.Verified {
		subject, tenant, issuer, spiffeID = id.Subject, id.Tenant, id.Issuer, id.SpiffeID
	}
	fields := []headerField{
		{h.Subject, subject}, {h.Tenant, tenant}, {h.Issuer, issuer},
		{h.SpiffeID, spiffeID}, {h.DecisionID, d.ID},
	}
	out := fields[:0]
	for _, f := range fields {
		if f.name != "-" && f.name != "" {
			out = append(out, f)
		}
	}
	return out
}

// queryChanges reads query_parameters_to_set (a value string or array of
// strings per key, an array meaning repeated keys) and
// query_parameters_to_remove (array of strings) from an object result, as
// OPA's Envoy plugin accepts them.
func queryChanges(result any) ([]headerField, []string, error) {
	obj, ok := result.(map[string]any)
	if !ok {
		return nil, nil, nil
	}
	var set []headerField
	if v, ok := obj["query_parameters_to_set"]; ok {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, nil, fmt.Errorf("policy result \"query_parameters_to_set\" is %T, want object", v)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			values, err := stringList(m[k])
			if err != nil {
				return nil, nil, fmt.Errorf("policy result \"query_parameters_to_set\" key %q: %w", k, err)
			}
			for _, val := range values {
				set = append(set, headerField{k, val})
			}
		}
	}
	var remove []string
	if v, ok := obj["query_parameters_to_remove"]; ok {
		list, ok := v.([]any)
		if !ok {
			return nil, nil, fmt.Errorf("policy result \"query_parameters_to_remove\" is %T, want array", v)
		}
		for _, item := range list {
			s, ok := item.(string)
			if !ok {
				return nil, nil, fmt.Errorf("policy result \"query_parameters_to_remove\" has a %T item", item)
			}
			remove = append(remove, s)
		}
	}
	return set, remove, nil
}

func stringList(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, item := range x {
			s, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("value has a %T item, want string", item)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("value is %T, want string or array of strings", v)
}

// isAuthFailure reports whether a deny is about missing or bad caller
// credentials (token.* and signature.*), which gateways answer with 401.
func isAuthFailure(r pdp.Reason) bool {
	s := string(r)
	return strings.HasPrefix(s, "token.") || strings.HasPrefix(s, "signature.")
}

// denyStatus returns the HTTP status an Envoy front door sends for a deny.
// A policy's 3xx or 4xx status is kept. Any other status becomes 401 for
// credential failures and 403 otherwise: a 2xx would read as allow to
// Envoy's HTTP mode, and Envoy's failure_mode_allow lets a request through
// when the authorization service itself fails, which a 5xx may look like.
func denyStatus(d *pdp.Decision) int {
	if d.HTTPStatus >= 300 && d.HTTPStatus < 500 {
		return d.HTTPStatus
	}
	if isAuthFailure(d.Reason) {
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}

// nginxDenyStatus returns 401 or 403, the only denials nginx's
// auth_request honours (any other status becomes a 500 for the client). A
// policy's explicit 401 is kept.
func nginxDenyStatus(d *pdp.Decision) int {
	if d.HTTPStatus == http.StatusUnauthorized || isAuthFailure(d.Reason) {
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}

// denialBody returns the body of a deny: the policy's body when it set one,
// else a JSON object with the decision id, reason code and generic text.
func denialBody(d *pdp.Decision) (body []byte, contentType string) {
	if d.Body != "" {
		return []byte(d.Body), ""
	}
	b, err := json.Marshal(errorBody{
		DecisionID: d.ID, Reason: d.Reason, Message: d.Reason.Text(),
	})
	if err != nil {
		// errorBody holds only strings and a bool, so this cannot happen.
		return nil, ""
	}
	return b, "application/json"
}

// requestHeaders flattens h into lower-cased names, joining repeated values
// with ",", the shape every input uses.
func requestHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for name, values := range h {
		out[strings.ToLower(name)] = strings.Join(values, ",")
	}
	return out
}

// requestToken returns the caller's token from the token header
// (identity.token_header, default "Authorization: Bearer ..."). A malformed
// value is returned as it is, so a route that needs a token rejects it as
// token.invalid instead of treating it as missing.
func (c *Config) requestToken(headers map[string]string) string {
	token, err := identity.TokenFromHeaders(headers, c.TokenHeader)
	if err != nil {
		return headers[c.tokenHeaderName()]
	}
	return token
}

func (c *Config) tokenHeaderName() string {
	if c.TokenHeader == "" {
		return identity.DefaultTokenHeader
	}
	return strings.ToLower(c.TokenHeader)
}

// signedMessage returns the signed message a gateway request carries when
// its headers have the configured signature header, else nil. The body is
// the raw bytes as forwarded; truncated marks a partial body.
func (c *Config) signedMessage(headers map[string]string, body []byte, truncated bool) *pdp.SignedMessage {
	if _, ok := headers[c.SignatureHeader]; !ok {
		return nil
	}
	return &pdp.SignedMessage{Headers: headers, Body: body, Truncated: truncated}
}
