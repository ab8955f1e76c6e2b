package pdp

import (
	"bytes"
	"encoding/json"
	"mime"
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

// buildInput assembles the Rego input document. attributes, parsed_* and
// truncated_body keep the shape of OPA's Envoy plugin; subject, action,
// resource and context keep the AuthZEN shape; identity, message and pdp are
// the PDP's own. Fields a front door cannot know are left out.
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
		in["identity"] = f.identity
	}
	if f.message != nil {
		in["message"] = f.message
	}

	if req.Attributes != nil {
		in["attributes"] = req.Attributes
	} else if req.HTTP != nil {
		in["attributes"] = attributesInput(req)
	}
	if req.HTTP == nil {
		return in, nil
	}

	in["parsed_path"] = f.target.Segments
	in["parsed_query"] = f.target.Query
	in["pdp"].(map[string]any)["normalized_path"] = f.target.Path()

	body, truncated, err := ParseBody(req.HTTP)
	if err != nil {
		return nil, err
	}
	if body != nil {
		in["parsed_body"] = body
	}
	in["truncated_body"] = truncated
	return in, nil
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
			"address": h.SourceAddress, "portValue": h.SourcePort,
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

// ParseBody returns input.parsed_body and input.truncated_body for a
// forwarded request, following OPA's Envoy plugin: JSON bodies are decoded
// (numbers kept exact), form bodies become a map of value lists, other
// content types are not parsed. A truncated body is never parsed. It returns
// a ReasonError with request.invalid for a JSON body that does not parse.
func ParseBody(h *HTTPRequest) (any, bool, error) {
	if truncatedBody(h) {
		return nil, true, nil
	}
	if len(h.Body) == 0 {
		return nil, false, nil
	}
	mediaType, _, _ := mime.ParseMediaType(h.Headers["content-type"])
	switch {
	case mediaType == "application/json" || strings.HasSuffix(mediaType, "+json"):
		dec := json.NewDecoder(bytes.NewReader(h.Body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, false, Denyf(ReasonRequestInvalid, "parse JSON body: %v", err)
		}
		return v, false, nil
	case mediaType == "application/x-www-form-urlencoded":
		values, err := url.ParseQuery(string(h.Body))
		if err != nil {
			return nil, false, Denyf(ReasonRequestInvalid, "parse form body: %v", err)
		}
		return map[string][]string(values), false, nil
	}
	return nil, false, nil
}

// truncatedBody reports whether the gateway forwarded only part of the body:
// Envoy marks it with x-envoy-auth-partial-body, and a content-length larger
// than the forwarded bytes means the same.
func truncatedBody(h *HTTPRequest) bool {
	if h.Truncated || strings.EqualFold(h.Headers["x-envoy-auth-partial-body"], "true") {
		return true
	}
	cl, ok := h.Headers["content-length"]
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(cl, 10, 64)
	return err == nil && n > int64(len(h.Body))
}
