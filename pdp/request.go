package pdp

import "crypto/x509"

// Front door names, as written to input.pdp.front_door, metrics and audit.
const (
	FrontDoorDirect    = "direct"
	FrontDoorOPA       = "opa_rest"
	FrontDoorAuthZEN   = "authzen"
	FrontDoorEnvoyGRPC = "envoy_grpc"
	FrontDoorEnvoyHTTP = "envoy_http"
	FrontDoorNGINX     = "nginx"
)

// Request is one authorization question, built by a front door. Subject,
// Action, Resource and Context have the shape of an OpenID AuthZEN evaluation
// request; HTTP carries the original request a gateway saw.
type Request struct {
	// FrontDoor names the adapter that built the request (FrontDoor* constants).
	FrontDoor string

	Subject  Subject
	Action   Action
	Resource Resource
	Context  map[string]any

	// HTTP is the request seen by the gateway; nil for pure AuthZEN calls.
	HTTP *HTTPRequest

	// Attributes, when set, is used verbatim as input.attributes (the Envoy
	// gRPC adapter passes the CheckRequest attributes in protojson form, as
	// an ast.Value). It is a map[string]any or an ast.Value. When nil, the
	// engine derives input.attributes from HTTP.
	Attributes any

	// Token is the bearer credential. It is verified and then dropped: it
	// never enters the policy input, logs or audit records.
	Token string

	// Peer is the mTLS identity of the original caller, when known.
	Peer *Peer

	// Message is a signed backchannel message to verify, when present.
	Message *SignedMessage

	// TraceID is the W3C trace id of the caller, when known (hex, 32 chars).
	TraceID string
}

// Subject is the AuthZEN subject: who asks.
type Subject struct {
	Type       string         `json:"type,omitempty"`
	ID         string         `json:"id,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Action is the AuthZEN action: what the subject wants to do.
type Action struct {
	Name       string         `json:"name,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Resource is the AuthZEN resource: what the action applies to.
type Resource struct {
	Type       string         `json:"type,omitempty"`
	ID         string         `json:"id,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// HTTPRequest is the original HTTP request as a gateway forwarded it.
type HTTPRequest struct {
	ID       string
	Method   string
	Scheme   string
	Host     string
	Protocol string
	// Path is the raw request target: path plus query, as received.
	Path string
	// Headers has lower-cased names; repeated headers are joined with ",".
	Headers map[string]string
	// Body holds the raw body bytes the gateway forwarded, if any.
	Body []byte
	// Truncated is true when the gateway forwarded only part of the body.
	Truncated bool
	// Size is the original body size in bytes, -1 when unknown.
	Size int64

	SourceAddress string
	SourcePort    uint32
}

// Peer is the caller's transport identity.
type Peer struct {
	// Certificates is the verified client certificate chain, leaf first,
	// when the PDP terminated the mTLS connection itself or the gateway
	// forwarded the certificate.
	Certificates []*x509.Certificate
	// Principal is the identity a gateway asserts for the peer (Envoy's
	// source principal, usually a SPIFFE ID).
	Principal string
}

// SignedMessage is a backchannel message as received, before verification.
type SignedMessage struct {
	// Headers has lower-cased names (webhook-id, webhook-signature, ...).
	Headers map[string]string
	// Body is the raw body exactly as signed; it is never re-serialized.
	Body []byte
	// Truncated is true when only part of the body reached the PDP. A
	// truncated body is never used for a signature check.
	Truncated bool
}
