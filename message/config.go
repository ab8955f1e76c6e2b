// Package message verifies signed backchannel messages (Standard Webhooks
// and configurable header sets): signature over the raw body, timestamp
// window and envelope schema.
package message

// Config lists the senders, their keys and the timestamp window.
type Config struct{}

// Validate reports every problem in the configuration.
func (c *Config) Validate() error { return nil }
