package pdp

import (
	"context"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Authenticator verifies caller credentials. Implementations return a
// ReasonError (token.*, identity.*) for a credential they reject; any other
// error is treated as token.invalid.
type Authenticator interface {
	// VerifyToken verifies a bearer token against the named issuers (all
	// configured issuers when the list is empty), including revocation.
	VerifyToken(ctx context.Context, token string, issuers []string) (*Identity, error)
	// VerifyPeer derives an identity from the caller's mTLS certificate or
	// gateway-asserted principal.
	VerifyPeer(ctx context.Context, peer *Peer) (*Identity, error)
}

// MessageVerifier checks a signed backchannel message: envelope schema,
// signature over the raw body and timestamp window. It returns a ReasonError
// (signature.*, message.*) for a message it rejects.
type MessageVerifier interface {
	Verify(ctx context.Context, msg *SignedMessage, req MessageRequirement) (*Message, error)
}

// ReplayCheck is one message's replay state to record.
type ReplayCheck struct {
	Sender  string
	Channel string
	Nonce   string
	// Timestamp is the message's signed send time.
	Timestamp   time.Time
	Sequence    uint64
	HasSequence bool
}

// ReplayStore records nonces and sequence numbers. Check marks the nonce as
// seen and advances the sequence in one atomic step. It returns nil for a
// fresh message, a ReasonError with a replay.* code for a replay, and any
// other error when the state cannot be read or written, which the engine
// turns into state.unavailable.
type ReplayStore interface {
	Check(ctx context.Context, c ReplayCheck) error
}

// Policy is one compiled, immutable bundle revision.
type Policy interface {
	Revision() string
	// Eval evaluates the configured decision entrypoint on input, already
	// converted to a Rego value so the engine can digest it without a
	// second encoding. defined is false when the entrypoint produced no
	// value.
	Eval(ctx context.Context, input ast.Value) (result any, defined bool, err error)
	// Query evaluates the document at a slash-separated data path, as OPA's
	// REST API does for /v1/data/{path}.
	Query(ctx context.Context, path string, input any) (result any, defined bool, err error)
}

// PolicySource hands out the active policy revision. Active returns nil
// while no bundle is active.
type PolicySource interface {
	Active() Policy
}

// Auditor writes one audit record per decision. Record returns only after
// the record is durable to the configured level; an error means the decision
// must not allow.
type Auditor interface {
	Record(ctx context.Context, ev *AuditEvent) error
}

// AuditEvent holds the facts of one decision that the audit log keeps. It
// holds no token, signature, secret or body: only digests and verified ids.
type AuditEvent struct {
	DecisionID     string
	Time           time.Time
	FrontDoor      string
	Route          string
	Allow          bool
	Reason         Reason
	HTTPStatus     int
	BundleRevision string
	TraceID        string
	// InputDigest is the hex SHA-256 of the policy input document, empty when
	// the decision ended before an input was built.
	InputDigest string

	Subject  string
	Issuer   string
	SpiffeID string
	Tenant   string
	Action   string
	Resource string

	MessageID   string
	Sender      string
	Sequence    uint64
	HasSequence bool
}
