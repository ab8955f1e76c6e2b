package pdp

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// ErrQueryFailed is wrapped by the error Query returns when the document
// could not be evaluated or its audit record could not be written. The
// Decision returned with it is a recorded deny.
var ErrQueryFailed = errors.New("query failed")

// Query evaluates the document at a slash-separated data path (for example
// "envoy/authz/allow", "" for all of data) with input, as OPA's REST API does
// for /v1/data/{path}, and writes an audit record as Decide does. input is
// passed to the policy unchanged and may be nil (no input document).
//
// Unlike Decide, Query runs no route checks (token, mTLS, signed message):
// the caller supplies the whole input document, as OPA's REST clients do.
//
// The returned Decision holds the value in Result, and defined tells
// whether the document had one (a defined value may be JSON null). For the
// audit record, Allow is true when the value is the boolean true or an
// object whose "allowed" is true, with Reason policy.allowed; any other
// value, and an undefined document, is recorded as policy.denied. The error
// is nil unless evaluation or the audit write failed; it then wraps
// ErrQueryFailed and carries the deny's reason (see ReasonOf), and the
// Decision holds no result.
func (e *Engine) Query(ctx context.Context, req *Request, path string, input any) (Decision, bool, error) {
	ctx, st, end := e.begin(ctx, req)
	d, defined, err := e.query(ctx, st, path, input)
	if err != nil {
		d = e.deny(st, ReasonOf(err, ReasonPolicyError))
		e.logDeny(ctx, st, d.Reason, err)
	}
	d = e.finish(ctx, req, st, d)
	end(&d)

	if err == nil && d.Reason == ReasonAuditUnavailable {
		err = Deny(ReasonAuditUnavailable, errors.New("audit record not written"))
	}
	if err != nil {
		d.Result = nil
		return d, false, fmt.Errorf("%w: %w", ErrQueryFailed, err)
	}
	return d, defined, nil
}

// query evaluates path and fills the decision; defined reports whether the
// document had a value.
func (e *Engine) query(ctx context.Context, st *decisionState, path string, input any) (Decision, bool, error) {
	policy := e.opts.Policies.Active()
	if policy == nil {
		return Decision{}, false, Deny(ReasonNoPolicy, errors.New("no active bundle"))
	}
	st.revision = policy.Revision()

	// The input is converted once: the digest is taken from the Rego value,
	// and the policy receives the same value.
	var value ast.Value
	if input != nil {
		var err error
		if value, err = ast.InterfaceToValue(input); err != nil {
			return Decision{}, false, Deny(ReasonRequestInvalid, fmt.Errorf("convert input: %w", err))
		}
		st.digest = digestValue(value)
	}

	evalCtx, cancel := context.WithTimeout(ctx, e.opts.PolicyTimeout)
	defer cancel()
	var queryInput any
	if value != nil {
		queryInput = value
	}
	result, defined, err := policy.Query(evalCtx, path, queryInput)
	if err != nil {
		return Decision{}, false, Deny(ReasonPolicyError, fmt.Errorf("query %q: %w", path, err))
	}

	d := Decision{ID: st.id, BundleRevision: st.revision, Result: result}
	d.Allow = defined && resultAllows(result)
	d.Reason = ReasonPolicyDenied
	if d.Allow {
		d.Reason = ReasonAllowed
	}
	d.HTTPStatus = d.Reason.HTTPStatus()
	return d, defined, nil
}

// resultAllows reports whether a data query result reads as an allow: the
// boolean true, or an object whose "allowed" is true.
func resultAllows(result any) bool {
	switch r := result.(type) {
	case bool:
		return r
	case map[string]any:
		allowed, _ := r["allowed"].(bool)
		return allowed
	}
	return false
}
