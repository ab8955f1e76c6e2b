// Package replaycache stores nonce and sequence state for replay checks: in
// memory for one instance, or in Redis (single, Sentinel, Cluster) for
// several replicas.
package replaycache

// Config selects the replay store.
type Config struct{}

// Validate reports every problem in the configuration.
func (c *Config) Validate() error { return nil }
