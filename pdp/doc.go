// Package pdp is the decision engine: it takes a Request from any front door,
// runs the mandatory checks a route requires (caller identity, message
// signature, replay), evaluates the active Rego policy on one input document,
// writes the audit record and returns a Decision.
//
// The engine declares the small interfaces it consumes (Authenticator,
// MessageVerifier, ReplayStore, PolicySource, Auditor); other packages
// implement them, so pdp carries no transport, Redis or JWT types.
package pdp
