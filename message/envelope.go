package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/authgate/pdp/pdp"
)

// maxSequence is 2^53-1, the largest integer a JSON number carries exactly
// in every common parser; the replay store accepts no larger sequence.
const maxSequence = 1<<53 - 1

// envelope builds the verified message from the signed body fields and
// checks them against the sender's configuration and the schema.
func (v *Verifier) envelope(signed *signedMessage, msg *pdp.SignedMessage, req pdp.MessageRequirement) (*pdp.Message, error) {
	s := signed.sender
	fields, isObject, err := topLevelFields(msg.Body)
	if err != nil {
		return nil, pdp.Deny(pdp.ReasonMessageInvalid, err)
	}

	out := &pdp.Message{
		Verified: true, ID: signed.id, Sender: s.Name, KeyID: signed.keyID,
		Timestamp: signed.timestamp.Unix(),
	}
	strs := []struct {
		field, header string
		dst           *string
	}{
		{s.Fields.Channel, s.Headers.Channel, &out.Channel},
		{s.Fields.CorrelationID, s.Headers.CorrelationID, &out.CorrelationID},
		{s.Fields.Scope, s.Headers.Scope, &out.Scope},
		{s.Fields.Tenant, s.Headers.Tenant, &out.Tenant},
		{s.Fields.Type, s.Headers.Type, &out.Type},
	}
	for _, f := range strs {
		if *f.dst, err = stringField(fields, f.field); err != nil {
			return nil, pdp.Deny(pdp.ReasonMessageInvalid, err)
		}
		if err := matchHeader(msg.Headers, f.header, f.field, *f.dst); err != nil {
			return nil, err
		}
	}

	seqText, err := sequenceField(fields, s.Fields.Sequence)
	if err != nil {
		return nil, pdp.Deny(pdp.ReasonMessageInvalid, err)
	}
	if err := matchHeader(msg.Headers, s.Headers.Sequence, s.Fields.Sequence, seqText); err != nil {
		return nil, err
	}
	if seqText != "" {
		out.Sequence, _ = strconv.ParseUint(seqText, 10, 64)
		out.HasSequence = true
	} else if s.RequireSequence {
		return nil, pdp.Denyf(pdp.ReasonMessageInvalid, "sender %q requires a sequence number in body field %q", s.Name, s.Fields.Sequence)
	}

	if err := checkSender(s, out); err != nil {
		return nil, err
	}
	if err := v.checkSchema(out.Type, req.Type, msg.Body, isObject); err != nil {
		return nil, err
	}
	return out, nil
}

// checkSender applies the sender's allowed scopes and tenant.
func checkSender(s *sender, m *pdp.Message) error {
	if m.Scope != "" && len(s.Scopes) > 0 && !slices.Contains(s.Scopes, m.Scope) {
		return pdp.Denyf(pdp.ReasonMessageInvalid, "sender %q may not use scope %q", s.Name, m.Scope)
	}
	if s.Tenant == "" {
		return nil
	}
	if m.Tenant != "" && m.Tenant != s.Tenant {
		return pdp.Denyf(pdp.ReasonMessageInvalid, "sender %q may not send for tenant %q", s.Name, m.Tenant)
	}
	m.Tenant = s.Tenant
	return nil
}

// matchHeader denies a message whose unsigned header differs from the
// signed body value, or that has the header without the body field.
func matchHeader(headers map[string]string, header, field, signed string) error {
	value, ok := headers[header]
	if !ok || value == signed {
		return nil
	}
	if signed == "" {
		return pdp.Denyf(pdp.ReasonMessageInvalid,
			"header %s is not signed and the signed body has no field %q; send the value in the body", header, field)
	}
	return pdp.Denyf(pdp.ReasonMessageInvalid, "header %s differs from signed body field %q", header, field)
}

// topLevelFields returns the raw top-level fields of a JSON object body.
// A body that is not a JSON object yields no fields. A body that starts
// like an object but does not parse, or repeats a key, is an error.
func topLevelFields(body []byte) (map[string]json.RawMessage, bool, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, true, fmt.Errorf("body is not valid JSON: %w", err)
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, true, fmt.Errorf("body is not valid JSON: %w", err)
		}
		key, _ := tok.(string)
		if _, dup := fields[key]; dup {
			return nil, true, fmt.Errorf("body repeats top-level field %q", key)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, true, fmt.Errorf("body is not valid JSON: %w", err)
		}
		fields[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, true, fmt.Errorf("body is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, true, errors.New("body has data after the JSON object")
	}
	return fields, true, nil
}

// stringField returns a string field, "" when absent or null.
func stringField(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("body field %q must be a string", name)
	}
	return s, nil
}

// sequenceField returns the sequence number in canonical decimal form, ""
// when absent or null. It accepts a JSON integer or a string of digits.
func sequenceField(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	text := string(raw)
	var quoted string
	if json.Unmarshal(raw, &quoted) == nil {
		text = quoted
	}
	n, err := strconv.ParseUint(text, 10, 64)
	if err != nil || n > maxSequence || strings.ContainsAny(text, "+-") {
		return "", fmt.Errorf("body field %q must be an integer from 0 to %d", name, uint64(maxSequence))
	}
	return strconv.FormatUint(n, 10), nil
}

// checkSchema validates the body against the schema of the route's type,
// or of the message's own type when the route names none.
func (v *Verifier) checkSchema(msgType, routeType string, body []byte, isObject bool) error {
	if routeType != "" && msgType != "" && msgType != routeType {
		return pdp.Denyf(pdp.ReasonMessageInvalid, "message type %q does not match the route's type %q", msgType, routeType)
	}
	typ := routeType
	if typ == "" {
		typ = msgType
	}
	if typ == "" {
		return nil
	}
	sch, ok := v.schemas[typ]
	if !ok {
		if routeType != "" {
			return pdp.Denyf(pdp.ReasonMessageInvalid, "no schema is configured for message type %q", routeType)
		}
		return nil
	}
	if !isObject && len(bytes.TrimSpace(body)) == 0 {
		return pdp.Denyf(pdp.ReasonMessageInvalid, "message type %q needs a JSON body", typ)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return pdp.Denyf(pdp.ReasonMessageInvalid, "body is not valid JSON: %v", err)
	}
	if err := sch.Validate(doc); err != nil {
		return pdp.Denyf(pdp.ReasonMessageInvalid, "body does not match the schema of type %q: %v", typ, err)
	}
	return nil
}

// compileSchemas compiles every configured schema. Only local files can be
// loaded, so a $ref never reaches the network.
func compileSchemas(schemas map[string]Schema) (map[string]*jsonschema.Schema, error) {
	out := make(map[string]*jsonschema.Schema, len(schemas))
	for typ, src := range schemas {
		c := jsonschema.NewCompiler()
		c.UseLoader(jsonschema.SchemeURLLoader{"file": jsonschema.FileLoader{}})
		location := src.File
		if src.Inline != "" {
			doc, err := jsonschema.UnmarshalJSON(strings.NewReader(src.Inline))
			if err != nil {
				return nil, fmt.Errorf("schemas.%s.inline: not valid JSON: %w", typ, err)
			}
			location = "mem:///schemas/" + typ + ".json"
			if err := c.AddResource(location, doc); err != nil {
				return nil, fmt.Errorf("schemas.%s.inline: %w", typ, err)
			}
		}
		sch, err := c.Compile(location)
		if err != nil {
			return nil, fmt.Errorf("schemas.%s: %w", typ, err)
		}
		out[typ] = sch
	}
	return out, nil
}
