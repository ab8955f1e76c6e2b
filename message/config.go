// Package message verifies signed backchannel messages (Standard Webhooks
// and configurable header sets): signature over the raw body, timestamp
// window and envelope schema.
//
// # Signature scheme
//
// A sender signs "{id}.{timestamp}.{body}" as Standard Webhooks defines it:
// id and timestamp are the values of the id and timestamp headers, and body
// is the raw body bytes, never re-serialized. The signature header holds
// space-separated "version,base64" entries: v1 is HMAC-SHA256 with a shared
// secret, v1a is Ed25519. One valid entry of a known version suffices;
// entries of unknown versions are ignored.
//
// # Which sender signed
//
// The verifier picks candidate senders in this order:
//  1. The sender header (sender_header, default webhook-sender) names
//     one configured sender. It is not signed: it only chooses whose keys
//     are tried, so a wrong value makes the signature check fail.
//  2. Without that header, a route that lists exactly one sender uses it.
//  3. Otherwise every sender the route lists (every configured sender when
//     it lists none) is tried in configuration order, at most
//     max_candidate_senders of them. More candidates than that is denied
//     with signature.invalid, so the cost of one forged message stays
//     bounded.
//
// Each sender has several keys, so keys can be rotated; the first one that
// verifies names the message's key id.
//
// # Which envelope fields are trusted
//
// Standard Webhooks signs only the id, the timestamp and the body. The
// sequence number, channel, correlation id, scope, tenant and type are
// therefore read from top-level fields of the JSON body, which the
// signature covers (field names configurable per sender). Headers that
// carry the same facts (webhook-sequence, webhook-scope, ...) are never
// trusted alone: when such a header is present, the body field must be
// present with the same value, or the message is denied with
// message.invalid. A body whose top level repeats a key is denied too,
// because JSON parsers disagree on which copy wins.
package message

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Defaults applied by Validate to fields left at their zero value.
const (
	DefaultPastTolerance       = 5 * time.Minute
	DefaultFutureTolerance     = 5 * time.Minute
	DefaultSenderHeader        = "webhook-sender"
	DefaultMaxCandidateSenders = 4

	DefaultIDHeader            = "webhook-id"
	DefaultTimestampHeader     = "webhook-timestamp"
	DefaultSignatureHeader     = "webhook-signature"
	DefaultSequenceHeader      = "webhook-sequence"
	DefaultChannelHeader       = "webhook-channel"
	DefaultCorrelationIDHeader = "webhook-correlation-id"
	DefaultScopeHeader         = "webhook-scope"
	DefaultTenantHeader        = "webhook-tenant"
	DefaultTypeHeader          = "webhook-type"

	DefaultSequenceField      = "sequence"
	DefaultChannelField       = "channel"
	DefaultCorrelationIDField = "correlation_id"
	DefaultScopeField         = "scope"
	DefaultTenantField        = "tenant"
	DefaultTypeField          = "type"
)

// Limits checked by Validate.
const (
	// MinSecretBytes is the shortest HMAC secret accepted, after base64
	// decoding.
	MinSecretBytes = 16
	// MaxKeysPerSender bounds the keys tried for one sender.
	MaxKeysPerSender = 8
)

// Config lists the senders, their keys and the timestamp window. The YAML
// keys are the snake_case names in the struct tags.
type Config struct {
	// Window is the accepted range of message timestamps. It must equal
	// the replay store's window, which keeps nonces exactly that long.
	Window Window `yaml:"window"`
	// SenderHeader names the header that selects the sender whose keys are
	// tried. Default "webhook-sender".
	SenderHeader string `yaml:"sender_header"`
	// MaxCandidateSenders bounds how many senders are tried for a message
	// without a sender header. Default 4.
	MaxCandidateSenders int `yaml:"max_candidate_senders"`
	// Senders are the parties allowed to sign messages.
	Senders []Sender `yaml:"senders"`
	// Schemas maps a message type to the JSON Schema its body must match.
	Schemas map[string]Schema `yaml:"schemas"`
}

// Window is the range of accepted message timestamps: a message is accepted
// when now-past-clock_skew < timestamp < now+future+clock_skew.
type Window struct {
	// Past is the maximum age of a message. Default 5m, as in Standard
	// Webhooks.
	Past time.Duration `yaml:"past"`
	// Future is the maximum time a message may be stamped ahead of the PDP's
	// clock.
	// Default 5m.
	Future time.Duration `yaml:"future"`
	// ClockSkew widens both sides. Default 0.
	ClockSkew time.Duration `yaml:"clock_skew"`
}

// Sender is one party that signs messages.
type Sender struct {
	// Name identifies the sender in routes, the sender header, replay keys
	// and input.message.sender.
	Name string `yaml:"name"`
	// Keys verify the sender's signatures; several may be active at once
	// during a rotation.
	Keys []Key `yaml:"keys"`
	// Headers names the headers this sender uses.
	Headers Headers `yaml:"headers"`
	// Fields names the signed body fields that carry the envelope.
	Fields Fields `yaml:"fields"`
	// RequireSequence denies with message.invalid a message without a
	// sequence number.
	RequireSequence bool `yaml:"require_sequence"`
	// Scopes lists the scopes the sender may use; a message with another
	// scope is denied with message.invalid. Empty allows any scope.
	Scopes []string `yaml:"scopes"`
	// Tenant is the sender's tenant: a message naming another tenant is
	// denied with message.invalid, and a message naming none gets this one.
	Tenant string `yaml:"tenant"`
}

// Key is one verification key. Exactly one of Secret and PublicKey is set.
type Key struct {
	// ID names the key in input.message.key_id and logs.
	ID string `yaml:"id"`
	// Secret is the v1 (HMAC-SHA256) secret: base64, with or without the
	// "whsec_" prefix, at least 16 bytes once decoded. Never logged.
	Secret string `yaml:"secret"`
	// PublicKey is the v1a (Ed25519) public key: 32 bytes base64, with or
	// without the "whpk_" prefix.
	PublicKey string `yaml:"public_key"`
	// NotBefore and NotAfter, when set, limit when the key verifies,
	// compared with the message timestamp.
	NotBefore time.Time `yaml:"not_before"`
	NotAfter  time.Time `yaml:"not_after"`
}

// Headers names the headers of one sender. Names are matched lower-cased.
type Headers struct {
	// ID, Timestamp and Signature are signed or carry the signature.
	// Defaults webhook-id, webhook-timestamp, webhook-signature.
	ID        string `yaml:"id"`
	Timestamp string `yaml:"timestamp"`
	Signature string `yaml:"signature"`
	// The others are not signed: each, when present, must repeat the
	// signed body field. Defaults webhook-sequence, webhook-channel,
	// webhook-correlation-id, webhook-scope, webhook-tenant, webhook-type.
	Sequence      string `yaml:"sequence"`
	Channel       string `yaml:"channel"`
	CorrelationID string `yaml:"correlation_id"`
	Scope         string `yaml:"scope"`
	Tenant        string `yaml:"tenant"`
	Type          string `yaml:"type"`
}

// Fields names the top-level JSON body fields that carry the envelope.
// Defaults sequence, channel, correlation_id, scope, tenant, type.
type Fields struct {
	Sequence      string `yaml:"sequence"`
	Channel       string `yaml:"channel"`
	CorrelationID string `yaml:"correlation_id"`
	Scope         string `yaml:"scope"`
	Tenant        string `yaml:"tenant"`
	Type          string `yaml:"type"`
}

// Schema is a JSON Schema, from a file or inline. References to other
// schemas resolve only to local files; nothing is fetched over a network.
type Schema struct {
	File   string `yaml:"file"`
	Inline string `yaml:"inline"`
}

// String hides the key material.
func (k Key) String() string {
	return fmt.Sprintf("key %q", k.ID)
}

// LogValue hides the key material from slog.
func (k Key) LogValue() slog.Value {
	return slog.StringValue(k.String())
}

func setDefault(field *string, value string) {
	if *field == "" {
		*field = value
	}
}

func (c *Config) setDefaults() {
	if c.Window.Past == 0 {
		c.Window.Past = DefaultPastTolerance
	}
	if c.Window.Future == 0 {
		c.Window.Future = DefaultFutureTolerance
	}
	setDefault(&c.SenderHeader, DefaultSenderHeader)
	c.SenderHeader = strings.ToLower(c.SenderHeader)
	if c.MaxCandidateSenders == 0 {
		c.MaxCandidateSenders = DefaultMaxCandidateSenders
	}
	for i := range c.Senders {
		c.Senders[i].setDefaults()
	}
}

func (s *Sender) setDefaults() {
	h := &s.Headers
	for _, d := range []struct {
		field *string
		value string
	}{
		{&h.ID, DefaultIDHeader}, {&h.Timestamp, DefaultTimestampHeader},
		{&h.Signature, DefaultSignatureHeader}, {&h.Sequence, DefaultSequenceHeader},
		{&h.Channel, DefaultChannelHeader}, {&h.CorrelationID, DefaultCorrelationIDHeader},
		{&h.Scope, DefaultScopeHeader}, {&h.Tenant, DefaultTenantHeader},
		{&h.Type, DefaultTypeHeader},
	} {
		setDefault(d.field, d.value)
		*d.field = strings.ToLower(*d.field)
	}
	f := &s.Fields
	setDefault(&f.Sequence, DefaultSequenceField)
	setDefault(&f.Channel, DefaultChannelField)
	setDefault(&f.CorrelationID, DefaultCorrelationIDField)
	setDefault(&f.Scope, DefaultScopeField)
	setDefault(&f.Tenant, DefaultTenantField)
	setDefault(&f.Type, DefaultTypeField)
}

// Validate fills defaults and reports every problem in the configuration at
// once, each prefixed with its key. It decodes every key, so an empty or
// malformed secret is reported here and not on the first message.
func (c *Config) Validate() error {
	c.setDefaults()
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if c.Window.Past < time.Second {
		add("window.past", "must be at least 1s, got %s", c.Window.Past)
	}
	if c.Window.Future < time.Second {
		add("window.future", "must be at least 1s, got %s", c.Window.Future)
	}
	if c.Window.ClockSkew < 0 {
		add("window.clock_skew", "must not be negative, got %s", c.Window.ClockSkew)
	}
	if c.MaxCandidateSenders < 1 {
		add("max_candidate_senders", "must be positive, got %d", c.MaxCandidateSenders)
	}

	var names []string
	for i, s := range c.Senders {
		prefix := fmt.Sprintf("senders[%d]", i)
		if s.Name == "" {
			add(prefix+".name", "is required")
		} else if slices.Contains(names, s.Name) {
			add(prefix+".name", "sender %q is listed twice", s.Name)
		}
		names = append(names, s.Name)
		errs = append(errs, s.validateKeys(prefix))
	}
	for typ, sch := range c.Schemas {
		if (sch.File == "") == (sch.Inline == "") {
			add("schemas."+typ, "set exactly one of file and inline")
		}
	}
	return errors.Join(errs...)
}

func (s *Sender) validateKeys(prefix string) error {
	var errs []error
	if len(s.Keys) == 0 {
		errs = append(errs, fmt.Errorf("%s.keys: at least one key is required", prefix))
	}
	if len(s.Keys) > MaxKeysPerSender {
		errs = append(errs, fmt.Errorf("%s.keys: at most %d keys, got %d", prefix, MaxKeysPerSender, len(s.Keys)))
	}
	var ids []string
	for j, k := range s.Keys {
		keyPrefix := fmt.Sprintf("%s.keys[%d]", prefix, j)
		if k.ID == "" {
			errs = append(errs, fmt.Errorf("%s.id: is required", keyPrefix))
		} else if slices.Contains(ids, k.ID) {
			errs = append(errs, fmt.Errorf("%s.id: key id %q is listed twice", keyPrefix, k.ID))
		}
		ids = append(ids, k.ID)
		if _, err := parseKey(k); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", keyPrefix, err))
		}
	}
	return errors.Join(errs...)
}

// decodeBase64 strips prefix and decodes standard base64, with or without
// padding.
func decodeBase64(value, prefix string) ([]byte, error) {
	value = strings.TrimPrefix(strings.TrimSpace(value), prefix)
	if b, err := base64.StdEncoding.DecodeString(value); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(value)
}
