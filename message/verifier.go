package message

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/authgate/pdp/pdp"
)

// PartialBodyHeader is the header Envoy's ext_authz filter sets to "true"
// when it forwarded only part of the body.
const PartialBodyHeader = "x-envoy-auth-partial-body"

// maxIDLength bounds a message id, which becomes part of a replay key.
const maxIDLength = 256

// Options wires a Verifier with what the configuration cannot hold.
type Options struct {
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Verifier checks signed messages. It implements pdp.MessageVerifier and
// is safe for concurrent use.
type Verifier struct {
	cfg     Config
	now     func() time.Time
	log     *slog.Logger
	senders []*sender
	byName  map[string]*sender
	schemas map[string]*jsonschema.Schema
}

// sender is a configured Sender with decoded keys.
type sender struct {
	Sender
	keys []verifyKey
}

var _ pdp.MessageVerifier = (*Verifier)(nil)

// NewVerifier validates cfg, decodes every key and compiles every schema.
func NewVerifier(cfg Config, opts Options) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("message config: %w", err)
	}
	v := &Verifier{cfg: cfg, now: opts.Now, log: opts.Logger, byName: map[string]*sender{}}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	for _, s := range cfg.Senders {
		compiled := &sender{Sender: s}
		for _, k := range s.Keys {
			vk, err := parseKey(k)
			if err != nil {
				return nil, fmt.Errorf("sender %q key %q: %w", s.Name, k.ID, err)
			}
			compiled.keys = append(compiled.keys, vk)
		}
		v.senders = append(v.senders, compiled)
		v.byName[s.Name] = compiled
	}
	var err error
	if v.schemas, err = compileSchemas(cfg.Schemas); err != nil {
		return nil, err
	}
	return v, nil
}

// Verify checks msg against the senders req allows. It returns a
// *pdp.ReasonError: signature.missing, signature.invalid, message.stale or
// message.invalid. The error text names headers and senders, never a
// secret, a signature or the body.
func (v *Verifier) Verify(ctx context.Context, msg *pdp.SignedMessage, req pdp.MessageRequirement) (*pdp.Message, error) {
	if msg == nil {
		return nil, pdp.Deny(pdp.ReasonSignatureMissing, errors.New("no signed message"))
	}
	if msg.Truncated || strings.EqualFold(strings.TrimSpace(msg.Headers[PartialBodyHeader]), "true") {
		return nil, pdp.Deny(pdp.ReasonMessageInvalid,
			errors.New("only part of the body was forwarded, so the signature cannot be checked; raise the gateway's body buffer limit"))
	}

	signed, err := v.authenticate(msg, req)
	if err != nil {
		return nil, err
	}
	if err := v.checkWindow(signed.timestamp); err != nil {
		return nil, err
	}
	out, err := v.envelope(signed, msg, req)
	if err != nil {
		return nil, err
	}
	return out, ctx.Err()
}

// signedMessage is the outcome of a successful signature check.
type signedMessage struct {
	sender    *sender
	keyID     string
	id        string
	timestamp time.Time
}

// authenticate finds the candidate senders and returns the first one whose
// key verifies the signature.
func (v *Verifier) authenticate(msg *pdp.SignedMessage, req pdp.MessageRequirement) (*signedMessage, error) {
	candidates, err := v.candidates(msg, req)
	if err != nil {
		return nil, err
	}

	sawSignature := false
	for _, s := range candidates {
		header := strings.TrimSpace(msg.Headers[s.Headers.Signature])
		if header == "" {
			continue
		}
		sawSignature = true
		id, ts, err := readIDAndTimestamp(msg, s)
		if err != nil {
			return nil, err
		}
		entries, err := parseSignatures(header)
		if err != nil {
			return nil, pdp.Deny(pdp.ReasonSignatureInvalid, err)
		}
		content := signedContent(id, ts, msg.Body)
		when := time.Unix(ts, 0)
		for i := range s.keys {
			k := &s.keys[i]
			if k.activeAt(when) && k.verify(content, entries) {
				return &signedMessage{sender: s, keyID: k.id, id: id, timestamp: when}, nil
			}
		}
	}
	if !sawSignature {
		return nil, pdp.Deny(pdp.ReasonSignatureMissing, errors.New("no signature header of a candidate sender"))
	}
	return nil, pdp.Denyf(pdp.ReasonSignatureInvalid, "no key of senders %v verifies the signature", senderNames(candidates))
}

// candidates returns the senders whose keys are tried, as the package
// documentation describes.
func (v *Verifier) candidates(msg *pdp.SignedMessage, req pdp.MessageRequirement) ([]*sender, error) {
	allowed := func(name string) bool {
		return len(req.Senders) == 0 || slices.Contains(req.Senders, name)
	}
	if name := strings.TrimSpace(msg.Headers[v.cfg.SenderHeader]); name != "" {
		s, ok := v.byName[name]
		if !ok {
			return nil, pdp.Denyf(pdp.ReasonSignatureInvalid, "header %s names unknown sender %q", v.cfg.SenderHeader, name)
		}
		if !allowed(name) {
			return nil, pdp.Denyf(pdp.ReasonSignatureInvalid, "sender %q is not allowed on this route", name)
		}
		return []*sender{s}, nil
	}

	var out []*sender
	for _, s := range v.senders {
		if allowed(s.Name) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, pdp.Denyf(pdp.ReasonSignatureInvalid, "none of the route's senders %v is configured", req.Senders)
	}
	if len(out) > v.cfg.MaxCandidateSenders {
		return nil, pdp.Denyf(pdp.ReasonSignatureInvalid,
			"no %s header and %d candidate senders, more than max_candidate_senders (%d); send the header or list fewer senders on the route",
			v.cfg.SenderHeader, len(out), v.cfg.MaxCandidateSenders)
	}
	return out, nil
}

func senderNames(senders []*sender) []string {
	names := make([]string, len(senders))
	for i, s := range senders {
		names[i] = s.Name
	}
	return names
}

// readIDAndTimestamp reads and checks the signed id and timestamp headers.
func readIDAndTimestamp(msg *pdp.SignedMessage, s *sender) (string, int64, error) {
	id := msg.Headers[s.Headers.ID]
	if id == "" {
		return "", 0, pdp.Denyf(pdp.ReasonMessageInvalid, "header %s is missing", s.Headers.ID)
	}
	if len(id) > maxIDLength || strings.ContainsFunc(id, isControlOrSpace) {
		return "", 0, pdp.Denyf(pdp.ReasonMessageInvalid, "header %s must be at most %d printable characters without spaces", s.Headers.ID, maxIDLength)
	}
	raw := msg.Headers[s.Headers.Timestamp]
	if raw == "" {
		return "", 0, pdp.Denyf(pdp.ReasonMessageInvalid, "header %s is missing", s.Headers.Timestamp)
	}
	ts, err := parseUnixSeconds(raw)
	if err != nil {
		return "", 0, pdp.Denyf(pdp.ReasonMessageInvalid, "header %s: %v", s.Headers.Timestamp, err)
	}
	return id, ts, nil
}

func isControlOrSpace(r rune) bool {
	return r <= ' ' || r == 0x7f
}

// parseUnixSeconds accepts only decimal digits, so "+1", " 1" and "1e9",
// which some parsers take, are rejected.
func parseUnixSeconds(s string) (int64, error) {
	if len(s) > 12 || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, fmt.Errorf("%q is not a Unix time in seconds", s)
	}
	return strconv.ParseInt(s, 10, 64)
}

// signedContent returns "{id}.{timestamp}.{body}", the Standard Webhooks
// signed content.
func signedContent(id string, ts int64, body []byte) []byte {
	stamp := strconv.FormatInt(ts, 10)
	content := make([]byte, 0, len(id)+len(stamp)+len(body)+2)
	content = append(content, id...)
	content = append(content, '.')
	content = append(content, stamp...)
	content = append(content, '.')
	return append(content, body...)
}

// checkWindow denies a timestamp outside the window, both bounds excluded.
func (v *Verifier) checkWindow(ts time.Time) error {
	now := v.now()
	w := v.cfg.Window
	oldest := now.Add(-w.Past - w.ClockSkew)
	newest := now.Add(w.Future + w.ClockSkew)
	if !ts.After(oldest) {
		return pdp.Denyf(pdp.ReasonMessageStale, "timestamp %d is %s old, the limit is %s",
			ts.Unix(), now.Sub(ts), w.Past+w.ClockSkew)
	}
	if !ts.Before(newest) {
		return pdp.Denyf(pdp.ReasonMessageStale, "timestamp %d is %s ahead, the limit is %s",
			ts.Unix(), ts.Sub(now), w.Future+w.ClockSkew)
	}
	return nil
}
