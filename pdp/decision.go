package pdp

import (
	"encoding/json"
	"sort"
)

// Decision is the engine's answer. Front doors translate it into their wire
// format (CheckResponse, NGINX status, AuthZEN, OPA REST).
type Decision struct {
	ID    string `json:"decision_id"`
	Allow bool   `json:"allow"`
	// Reason is the stable code of the outcome, policy.allowed on allow.
	Reason     Reason `json:"reason"`
	HTTPStatus int    `json:"http_status"`
	// Headers are added to the upstream request on allow, or to the denial
	// response on deny.
	Headers Headers `json:"headers,omitempty"`
	// ResponseHeadersToAdd are added to the upstream's response on allow.
	ResponseHeadersToAdd   Headers        `json:"response_headers_to_add,omitempty"`
	RequestHeadersToRemove []string       `json:"request_headers_to_remove,omitempty"`
	Body                   string         `json:"body,omitempty"`
	DynamicMetadata        map[string]any `json:"dynamic_metadata,omitempty"`
	// Reasons holds policy-supplied explanations, if any.
	Reasons        []string `json:"reasons,omitempty"`
	BundleRevision string   `json:"bundle_revision,omitempty"`

	// Result is the raw policy result, for front doors that return it.
	Result any `json:"-"`
	// Identity and Message are the verified facts the decision used.
	Identity *Identity `json:"-"`
	Message  *Message  `json:"-"`
}

// Headers maps a header name to its values, in order. It encodes a
// single value as a JSON string and several as an array.
type Headers map[string][]string

// Add appends a value to the named header.
func (h Headers) Add(name, value string) {
	h[name] = append(h[name], value)
}

// Set replaces the named header's values.
func (h Headers) Set(name, value string) {
	h[name] = []string{value}
}

// Names returns the header names in sorted order.
func (h Headers) Names() []string {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// MarshalJSON encodes single values as strings and several as arrays.
func (h Headers) MarshalJSON() ([]byte, error) {
	out := make(map[string]any, len(h))
	for name, values := range h {
		if len(values) == 1 {
			out[name] = values[0]
			continue
		}
		out[name] = values
	}
	return json.Marshal(out)
}
