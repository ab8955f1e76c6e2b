package pdp

// Identity is the verified caller, exposed to policies as input.identity.
// Only verified facts are set; a credential itself is never stored here.
type Identity struct {
	Verified bool     `json:"verified"`
	Method   string   `json:"method"` // "jwt", "mtls" or "hmac"
	Issuer   string   `json:"issuer,omitempty"`
	Subject  string   `json:"subject,omitempty"`
	Audience []string `json:"audience,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
	Tenant   string   `json:"tenant,omitempty"`
	KeyID    string   `json:"key_id,omitempty"`
	TokenID  string   `json:"token_id,omitempty"`
	// ExpiresAt is the credential's expiry in Unix seconds, 0 when none.
	ExpiresAt int64 `json:"expires_at,omitempty"`

	SpiffeID    string   `json:"spiffe_id,omitempty"`
	CertSubject string   `json:"cert_subject,omitempty"`
	DNSNames    []string `json:"dns_names,omitempty"`
	URIs        []string `json:"uris,omitempty"`

	// Claims holds the verified token claims.
	Claims map[string]any `json:"claims,omitempty"`
}

// Message is a verified backchannel message, exposed as input.message.
type Message struct {
	Verified bool   `json:"verified"`
	ID       string `json:"id"`
	Type     string `json:"type,omitempty"`
	Sender   string `json:"sender"`
	KeyID    string `json:"key_id,omitempty"`
	// Timestamp is the signed send time in Unix seconds.
	Timestamp int64 `json:"timestamp"`
	// Sequence is the per-sender monotonic sequence number; HasSequence
	// tells whether the message carried one.
	Sequence      uint64 `json:"sequence,omitempty"`
	HasSequence   bool   `json:"-"`
	Channel       string `json:"channel,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	Scope         string `json:"scope,omitempty"`
	Tenant        string `json:"tenant,omitempty"`
	// Replay is the replay verdict: "fresh" once the replay check passed.
	Replay string `json:"replay,omitempty"`
}
