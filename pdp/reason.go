package pdp

import (
	"errors"
	"fmt"
	"net/http"
)

// Reason is a stable, dotted code that names why a decision came out as it
// did. Codes are part of the API: callers, metrics and audit records use them.
type Reason string

// Reason codes. A deny always carries exactly one of them.
const (
	ReasonAllowed Reason = "policy.allowed"

	ReasonTokenMissing Reason = "token.missing"
	ReasonTokenInvalid Reason = "token.invalid"
	ReasonTokenExpired Reason = "token.expired"
	ReasonTokenRevoked Reason = "token.revoked"

	ReasonIdentityMissing   Reason = "identity.missing"
	ReasonIdentityForbidden Reason = "identity.forbidden"

	ReasonSignatureMissing Reason = "signature.missing"
	ReasonSignatureInvalid Reason = "signature.invalid"
	ReasonMessageStale     Reason = "message.stale"
	ReasonMessageInvalid   Reason = "message.invalid"

	ReasonNonceReused       Reason = "replay.nonce_reused"
	ReasonSequenceRegressed Reason = "replay.sequence_regressed"

	ReasonPolicyDenied Reason = "policy.denied"
	ReasonPolicyError  Reason = "policy.error"

	ReasonStateUnavailable Reason = "state.unavailable"
	ReasonAuditUnavailable Reason = "audit.unavailable"
	ReasonNoPolicy         Reason = "policy.unavailable"

	ReasonRequestInvalid  Reason = "request.invalid"
	ReasonRequestTooLarge Reason = "request.too_large"
	ReasonRouteUnmatched  Reason = "route.unmatched"
	ReasonOverloaded      Reason = "request.overloaded"
	ReasonTimeout         Reason = "request.timeout"
)

type reasonInfo struct {
	status int
	text   string
}

// reasons maps every code to the HTTP status a gateway should return and a
// short generic text. The text never contains internals (keys, paths, errors).
var reasons = map[Reason]reasonInfo{
	ReasonAllowed:           {http.StatusOK, "allowed"},
	ReasonTokenMissing:      {http.StatusUnauthorized, "a bearer token is required"},
	ReasonTokenInvalid:      {http.StatusUnauthorized, "the token is invalid"},
	ReasonTokenExpired:      {http.StatusUnauthorized, "the token has expired"},
	ReasonTokenRevoked:      {http.StatusUnauthorized, "the token has been revoked"},
	ReasonIdentityMissing:   {http.StatusUnauthorized, "a client certificate identity is required"},
	ReasonIdentityForbidden: {http.StatusForbidden, "the client identity is not allowed"},
	ReasonSignatureMissing:  {http.StatusUnauthorized, "the message signature is missing"},
	ReasonSignatureInvalid:  {http.StatusUnauthorized, "the message signature is invalid"},
	ReasonMessageStale:      {http.StatusUnauthorized, "the message timestamp is outside the accepted window"},
	ReasonMessageInvalid:    {http.StatusBadRequest, "the message envelope is invalid"},
	ReasonNonceReused:       {http.StatusConflict, "the message id was already used"},
	ReasonSequenceRegressed: {http.StatusConflict, "the message sequence number was already used or is out of window"},
	ReasonPolicyDenied:      {http.StatusForbidden, "denied by policy"},
	ReasonPolicyError:       {http.StatusInternalServerError, "the policy could not be evaluated"},
	ReasonStateUnavailable:  {http.StatusServiceUnavailable, "shared state (replay or revocation) is unavailable"},
	ReasonAuditUnavailable:  {http.StatusServiceUnavailable, "the audit log is unavailable"},
	ReasonNoPolicy:          {http.StatusServiceUnavailable, "no policy bundle is active"},
	ReasonRequestInvalid:    {http.StatusBadRequest, "the request is invalid"},
	ReasonRequestTooLarge:   {http.StatusRequestEntityTooLarge, "the request is too large"},
	ReasonRouteUnmatched:    {http.StatusForbidden, "no route matches the request"},
	ReasonOverloaded:        {http.StatusTooManyRequests, "too many concurrent decisions"},
	ReasonTimeout:           {http.StatusServiceUnavailable, "the decision deadline was exceeded"},
}

// Reasons returns every defined reason code.
func Reasons() []Reason {
	out := make([]Reason, 0, len(reasons))
	for r := range reasons {
		out = append(out, r)
	}
	return out
}

// HTTPStatus returns the status a gateway should send for this reason,
// 403 for an unknown code.
func (r Reason) HTTPStatus() int {
	if info, ok := reasons[r]; ok {
		return info.status
	}
	return http.StatusForbidden
}

// Text returns the short, generic description sent to callers.
func (r Reason) Text() string {
	if info, ok := reasons[r]; ok {
		return info.text
	}
	return "denied"
}

// Known reports whether r is a defined reason code.
func (r Reason) Known() bool {
	_, ok := reasons[r]
	return ok
}

// ReasonError is an error that carries the reason code a check failed with.
// The wrapped error holds the detail for the server log only.
type ReasonError struct {
	Reason Reason
	Err    error
}

// Deny returns a ReasonError for reason that wraps err (which may be nil).
// An err that already is a ReasonError with the same reason is returned as
// it is, so messages do not repeat the code.
func Deny(reason Reason, err error) *ReasonError {
	if re, ok := err.(*ReasonError); ok && re.Reason == reason {
		return re
	}
	return &ReasonError{Reason: reason, Err: err}
}

// Denyf returns a ReasonError for reason with a formatted detail.
func Denyf(reason Reason, format string, args ...any) *ReasonError {
	return &ReasonError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

func (e *ReasonError) Error() string {
	if e.Err == nil {
		return string(e.Reason)
	}
	return string(e.Reason) + ": " + e.Err.Error()
}

func (e *ReasonError) Unwrap() error { return e.Err }

// ReasonOf returns the reason code carried by err, or fallback when err
// carries none.
func ReasonOf(err error, fallback Reason) Reason {
	var re *ReasonError
	if errors.As(err, &re) {
		return re.Reason
	}
	return fallback
}
