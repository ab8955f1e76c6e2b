package pdp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// inputFacts are the engine-side facts added to every input document.
type inputFacts struct {
	decisionID string
	instance   string
	revision   string
	route      string
	now        time.Time
	target     ParsedTarget
	identity   *Identity
	message    *Message
}

// buildInput assembles the Rego input document. The attributes, parsed_*
// and truncated_body fields keep the shape of OPA's Envoy plugin, and
// subject, action, resource and context keep the AuthZEN shape. The
// identity, message and pdp fields are the PDP's own. Fields a front door
// cannot know are left out.
func buildInput(req *Request, f inputFacts) (map[string]any, error) {
	in := map[string]any{
		"subject":  subjectInput(req.Subject),
		"action":   actionInput(req.Action),
		"resource": resourceInput(req.Resource),
		"context":  contextInput(req.Context),
		"pdp": map[string]any{
			"front_door":      req.FrontDoor,
			"instance":        f.instance,
			"bundle_revision": f.revision,
			"decision_id":     f.decisionID,
			"route":           f.route,
			"time":            f.now.UTC().Format(time.RFC3339Nano),
		},
	}
	if f.identity != nil {
		in["identity"] = identityInput(f.identity)
	}
	if f.message != nil {
		in["message"] = messageInput(f.message)
	}

	if req.Attributes != nil {
		in["attributes"] = req.Attributes
	} else if req.HTTP != nil {
		in["attributes"] = attributesInput(req)
	}
	addEnvoyPluginFields(in, req)
	if req.HTTP == nil {
		return in, nil
	}

	in["parsed_path"] = f.target.Segments
	in["parsed_query"] = stringListMap(f.target.Query)
	in["pdp"].(map[string]any)["normalized_path"] = f.target.Path()

	body, truncated, err := ParseBody(req.HTTP)
	if err != nil {
		return nil, err
	}
	if form, ok := body.(map[string][]string); ok {
		body = stringListMap(form)
	}
	if body != nil {
		in["parsed_body"] = body
	}
	in["truncated_body"] = truncated
	return in, nil
}

// The input holds only map[string]any, []any, []string, map[string]string,
// strings, booleans and numbers: OPA converts those to Rego values
// directly, while any other Go type (a struct, map[string][]string) takes a
// JSON encode and decode first.

// stringListMap converts query or form values to the input's native shape.
func stringListMap(values map[string][]string) map[string]any {
	out := make(map[string]any, len(values))
	for k, v := range values {
		out[k] = v
	}
	return out
}

// identityInput is input.identity, with the field names and omissions of
// Identity's JSON encoding.
func identityInput(id *Identity) map[string]any {
	m := map[string]any{"verified": id.Verified, "method": id.Method}
	setIf(m, "issuer", id.Issuer)
	setIf(m, "subject", id.Subject)
	setIf(m, "tenant", id.Tenant)
	setIf(m, "key_id", id.KeyID)
	setIf(m, "token_id", id.TokenID)
	setIf(m, "spiffe_id", id.SpiffeID)
	setIf(m, "cert_subject", id.CertSubject)
	setListIf(m, "audience", id.Audience)
	setListIf(m, "scopes", id.Scopes)
	setListIf(m, "dns_names", id.DNSNames)
	setListIf(m, "uris", id.URIs)
	if id.ExpiresAt != 0 {
		m["expires_at"] = id.ExpiresAt
	}
	if len(id.Claims) > 0 {
		m["claims"] = id.Claims
	}
	return m
}

// messageInput is input.message, with the field names and omissions of
// Message's JSON encoding; sequence is present when the message had one.
func messageInput(msg *Message) map[string]any {
	m := map[string]any{
		"verified": msg.Verified, "id": msg.ID, "sender": msg.Sender, "timestamp": msg.Timestamp,
	}
	if msg.HasSequence {
		m["sequence"] = msg.Sequence
	}
	setIf(m, "type", msg.Type)
	setIf(m, "key_id", msg.KeyID)
	setIf(m, "channel", msg.Channel)
	setIf(m, "correlation_id", msg.CorrelationID)
	setIf(m, "scope", msg.Scope)
	setIf(m, "tenant", msg.Tenant)
	setIf(m, "replay", msg.Replay)
	return m
}

func setListIf(m map[string]any, key string, values []string) {
	if len(values) > 0 {
		m[key] = values
	}
}

func subjectInput(s Subject) map[string]any {
	return withProperties(map[string]any{"type": s.Type, "id": s.ID}, s.Properties)
}

func actionInput(a Action) map[string]any {
	return withProperties(map[string]any{"name": a.Name}, a.Properties)
}

func resourceInput(r Resource) map[string]any {
	return withProperties(map[string]any{"type": r.Type, "id": r.ID}, r.Properties)
}

func contextInput(c map[string]any) map[string]any {
	if c == nil {
		return map[string]any{}
	}
	return c
}

func withProperties(m, props map[string]any) map[string]any {
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	if props != nil {
		m["properties"] = props
	}
	return m
}

// attributesInput builds input.attributes in the protojson shape of an Envoy
// CheckRequest from the HTTP request a gateway forwarded.
func attributesInput(req *Request) map[string]any {
	h := req.HTTP
	httpAttrs := map[string]any{
		"method":  h.Method,
		"path":    h.Path,
		"headers": h.Headers,
	}
	setIf(httpAttrs, "id", h.ID)
	setIf(httpAttrs, "host", h.Host)
	setIf(httpAttrs, "scheme", h.Scheme)
	setIf(httpAttrs, "protocol", h.Protocol)
	if len(h.Body) > 0 {
		httpAttrs["body"] = string(h.Body)
	}
	if h.Size >= 0 {
		httpAttrs["size"] = strconv.FormatInt(h.Size, 10)
	}

	attrs := map[string]any{"request": map[string]any{"http": httpAttrs}}
	source := map[string]any{}
	if h.SourceAddress != "" {
		source["address"] = map[string]any{"socketAddress": map[string]any{
			"address": h.SourceAddress, "portValue": int64(h.SourcePort),
		}}
	}
	if req.Peer != nil && req.Peer.Principal != "" {
		source["principal"] = req.Peer.Principal
	}
	if len(source) > 0 {
		attrs["source"] = source
	}
	return attrs
}

func setIf(m map[string]any, key, value string) {
	if value != "" {
		m[key] = value
	}
}

// envoyVersion is input.version as OPA's Envoy plugin sets it for ext_authz
// v3 requests, whose attributes are in protojson form.
var envoyVersion = map[string]any{"ext_authz": "v3", "encoding": "protojson"}

// addEnvoyPluginFields adds the top-level fields that OPA's Envoy plugin
// adds beside input.attributes: version when the attributes come from a
// CheckRequest, and source_principal when the gateway asserted a peer
// principal. Policies written for the plugin read both.
func addEnvoyPluginFields(in map[string]any, req *Request) {
	if req.Attributes != nil {
		in["version"] = envoyVersion
	}
	if req.Peer != nil && req.Peer.Principal != "" {
		in["source_principal"] = req.Peer.Principal
	}
}

// ParseBody returns input.parsed_body and input.truncated_body for a
// forwarded request, as OPA's Envoy plugin computes them:
//   - a truncated body (see BodyTruncated) is never parsed;
//   - without a content-type header or with an empty body, nothing is parsed;
//   - application/json and any "+json" media type: the one JSON value, with
//     numbers kept exact as json.Number and trailing data rejected;
//   - application/x-www-form-urlencoded: a map of value lists;
//   - multipart/form-data: a map from form field name to a list of values,
//     a part whose content type is JSON decoded as JSON and any other part
//     kept as a string; parts without a form name are skipped, and a
//     content type without a boundary parameter is not parsed;
//   - any other content type is not parsed.
//
// A body that should parse but does not, or a content-length header that is
// not a number, yields a ReasonError with request.invalid, which OPA's
// plugin answers with 400 as well.
func ParseBody(h *HTTPRequest) (any, bool, error) {
	if cl, ok := h.Headers["content-length"]; ok && len(h.Body) > 0 {
		if _, err := parseContentLength(cl); err != nil {
			return nil, false, Denyf(ReasonRequestInvalid, "content-length %q: %v", cl, err)
		}
	}
	if truncatedBody(h) {
		return nil, true, nil
	}
	contentType, ok := h.Headers["content-type"]
	if !ok || len(h.Body) == 0 {
		return nil, false, nil
	}

	mediaType := mediaTypeOf(contentType)
	switch {
	case isJSONMediaType(mediaType):
		v, err := decodeJSONValue(h.Body)
		if err != nil {
			return nil, false, Denyf(ReasonRequestInvalid, "parse JSON body: %v", err)
		}
		return v, false, nil
	case mediaType == "application/x-www-form-urlencoded":
		values, err := url.ParseQuery(string(h.Body))
		if err != nil {
			return nil, false, Denyf(ReasonRequestInvalid, "parse form body: %v", err)
		}
		return map[string][]string(values), false, nil
	case mediaType == "multipart/form-data":
		v, err := parseMultipart(contentType, h.Body)
		if err != nil {
			return nil, false, Denyf(ReasonRequestInvalid, "parse multipart body: %v", err)
		}
		if v == nil {
			return nil, false, nil
		}
		return v, false, nil
	}
	return nil, false, nil
}

// mediaTypeOf returns the lower-cased media type of a content-type value,
// without parameters. It accepts values that mime.ParseMediaType rejects,
// such as "application/json;" with an empty parameter.
func mediaTypeOf(contentType string) string {
	mediaType, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(mediaType))
}

func isJSONMediaType(mediaType string) bool {
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// decodeJSONValue decodes exactly one JSON value, numbers as json.Number.
func decodeJSONValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// parseMultipart parses a multipart/form-data body into field name to
// values. It returns nil, nil when the content type has no boundary.
func parseMultipart(contentType string, body []byte) (map[string][]any, error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, err
	}
	boundary, ok := params["boundary"]
	if !ok {
		return nil, nil
	}

	values := map[string][]any{}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return values, nil
		}
		if err != nil {
			return nil, err
		}
		name := part.FormName()
		if name == "" {
			continue
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return nil, fmt.Errorf("read part %q: %w", name, err)
		}
		if !isJSONMediaType(mediaTypeOf(part.Header.Get("Content-Type"))) {
			values[name] = append(values[name], string(data))
			continue
		}
		v, err := decodeJSONValue(data)
		if err != nil {
			return nil, fmt.Errorf("part %q: %w", name, err)
		}
		values[name] = append(values[name], v)
	}
}

// BodyTruncated reports whether the gateway forwarded only part of the
// body. A truncated body must not be parsed or used for a signature check.
func BodyTruncated(h *HTTPRequest) bool {
	return truncatedBody(h)
}

// truncatedBody reports whether the gateway forwarded only part of the
// body: the front door said so, Envoy set x-envoy-auth-partial-body: true
// (it does when the body exceeded max_request_bytes, also for HTTP/2 and
// chunked requests that have no content-length), or a content-length header
// is larger than the forwarded bytes. An empty forwarded body is not
// truncated, as in OPA's Envoy plugin: Envoy sends none unless
// with_request_body is configured. A content-length that is not a number
// marks a non-empty body truncated, so it is never trusted.
func truncatedBody(h *HTTPRequest) bool {
	if h.Truncated || strings.EqualFold(h.Headers["x-envoy-auth-partial-body"], "true") {
		return true
	}
	if len(h.Body) == 0 {
		return false
	}
	cl, ok := h.Headers["content-length"]
	if !ok {
		return false
	}
	n, err := parseContentLength(cl)
	return err != nil || n > int64(len(h.Body))
}

// parseContentLength parses a content-length header value; -1 means
// unknown, as Envoy reports it.
func parseContentLength(value string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
	if err != nil {
		return 0, errors.New("not an integer")
	}
	if n < -1 {
		return 0, errors.New("negative")
	}
	return n, nil
}
