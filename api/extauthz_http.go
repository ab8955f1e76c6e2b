package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/authgate/pdp/pdp"
)

// envoyHeadersToRemove is the response header through which Envoy's HTTP
// ext_authz mode learns which request headers to strip upstream.
const envoyHeadersToRemove = "x-envoy-auth-headers-to-remove"

// extAuthz handles Envoy's HTTP ext_authz mode: Envoy sends the original
// method, headers and (with with_request_body) body to the configured
// path_prefix followed by the original request target. It responds 200 to
// allow, with the headers to add upstream (select them with Envoy's
// allowed_upstream_headers) and the response headers to add (select them
// with allowed_client_headers_on_success); any other status denies, and
// Envoy relays it, its headers and body to the client.
func (s *Server) extAuthz(c echo.Context) error {
	r := c.Request()
	headers := requestHeaders(r.Header)
	req := &pdp.Request{
		FrontDoor: pdp.FrontDoorEnvoyHTTP,
		Context:   map[string]any{},
		Token:     s.gw.requestToken(headers),
		HTTP: &pdp.HTTPRequest{
			Method: requestMethod(c), Host: r.Host, Path: originalTarget(r.RequestURI, s.gw.ExtAuthzPrefix),
			Scheme: headers["x-forwarded-proto"], Protocol: r.Proto, Headers: headers,
			Size: r.ContentLength,
		},
	}
	describeHTTP(req)

	body, err := s.readBody(c)
	if err != nil {
		d := s.opts.Engine.Reject(r.Context(), req, pdp.ReasonOf(err, pdp.ReasonRequestInvalid), err)
		return s.writeEnvoyHTTP(c, &d)
	}
	req.HTTP.Body = body
	req.Message = s.gw.signedMessage(headers, body, pdp.BodyTruncated(req.HTTP))

	d := s.opts.Engine.Decide(r.Context(), req)
	return s.writeEnvoyHTTP(c, &d)
}

// originalTarget returns the request target Envoy appended to prefix,
// exactly as received (still percent-encoded), "/" when empty.
func originalTarget(requestURI, prefix string) string {
	target := strings.TrimPrefix(requestURI, prefix)
	if target == "" || target[0] == '?' {
		return "/" + target
	}
	return target
}

// describeHTTP fills the AuthZEN-shaped action and resource of a gateway
// request from its method and normalized path.
func describeHTTP(req *pdp.Request) {
	req.Action = pdp.Action{Name: req.HTTP.Method}
	if target, err := pdp.ParseTarget(req.HTTP.Path); err == nil {
		req.Resource = pdp.Resource{Type: "route", ID: target.Path()}
	}
}

func (s *Server) writeEnvoyHTTP(c echo.Context, d *pdp.Decision) error {
	out := c.Response().Header()
	if d.Allow {
		ch, err := s.gw.allowChanges(d)
		if err == nil {
			for _, f := range ch.set {
				out.Add(f.name, f.value)
			}
			for _, f := range ch.responseAdd {
				out.Add(f.name, f.value)
			}
			if len(ch.remove) > 0 {
				out.Set(envoyHeadersToRemove, strings.Join(ch.remove, ","))
			}
			return c.NoContent(http.StatusOK)
		}
		s.log.Error("policy result cannot be sent to envoy", "decision_id", d.ID, "error", err)
		*d = policyErrorDeny(d)
	}
	return s.writeDenial(c, d, denyStatus(d))
}

// writeDenial sends a deny with its headers (x-pdp-reason among them) and
// body.
func (s *Server) writeDenial(c echo.Context, d *pdp.Decision, status int) error {
	out := c.Response().Header()
	for _, name := range d.Headers.Names() {
		for _, v := range d.Headers[name] {
			out.Add(name, v)
		}
	}
	out.Set("x-pdp-reason", string(d.Reason))
	body, contentType := denialBody(d)
	if contentType == "" {
		contentType = "text/plain; charset=utf-8"
	}
	return c.Blob(status, contentType, body)
}

// policyErrorDeny returns the deny that replaces an allow whose result
// cannot be translated for the gateway (a malformed
// query_parameters_to_set, say).
// NOTE: the audit record of such a decision still records allow, because the
// engine does not read these fields.
func policyErrorDeny(d *pdp.Decision) pdp.Decision {
	out := pdp.Decision{
		ID: d.ID, Reason: pdp.ReasonPolicyError, HTTPStatus: http.StatusForbidden,
		BundleRevision: d.BundleRevision, Headers: pdp.Headers{},
	}
	out.Headers.Set("x-pdp-reason", string(out.Reason))
	return out
}
