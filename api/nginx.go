package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/authgate/pdp/pdp"
)

// nginxAuth handles nginx's auth_request subrequest. nginx sends the
// original request's headers but never its body; the original method and
// target come from headers the nginx configuration sets:
//
//	proxy_set_header X-Original-Method $request_method;
//	proxy_set_header X-Original-URI    $request_uri;
//	proxy_set_header X-Forwarded-Host  $host;
//	proxy_set_header X-Forwarded-Proto $scheme;
//	proxy_set_header X-Forwarded-For   $proxy_add_x_forwarded_for;
//
// X-Original-URI is required. The response is 200 to allow, with the
// identity headers and the policy's headers for auth_request_set to copy
// (an identity header is sent empty when unknown, and nginx's
// proxy_set_header with an empty value drops the client's header). Every
// deny is 401 (token.* and signature.*, or a policy's explicit 401) or 403,
// because auth_request turns any other status into a 500 for the client.
func (s *Server) nginxAuth(c echo.Context) error {
	r := c.Request()
	headers := requestHeaders(r.Header)
	req := &pdp.Request{
		FrontDoor: pdp.FrontDoorNGINX,
		Context:   map[string]any{},
		Token:     s.gw.requestToken(headers),
	}

	target := r.Header.Get("X-Original-URI")
	if target == "" {
		err := pdp.Deny(pdp.ReasonRequestInvalid, errors.New("nginx sent no X-Original-URI header"))
		d := s.opts.Engine.Reject(r.Context(), req, pdp.ReasonRequestInvalid, err)
		return s.writeDenial(c, &d, nginxDenyStatus(&d))
	}
	method := r.Header.Get("X-Original-Method")
	if method == "" {
		method = r.Method
	}
	host := r.Header.Get("X-Forwarded-Host")
	if host == "" {
		host = r.Host
	}
	req.HTTP = &pdp.HTTPRequest{
		Method: strings.ToUpper(method), Host: host, Path: target,
		Scheme: r.Header.Get("X-Forwarded-Proto"), Protocol: r.Proto, Headers: headers,
		Size: contentLength(headers), SourceAddress: forwardedClient(r.Header),
	}
	describeHTTP(req)
	// nginx never forwards the body, so a signed message always counts as
	// truncated unless the original request had an empty body.
	req.Message = s.gw.signedMessage(headers, nil, req.HTTP.Size != 0)

	d := s.opts.Engine.Decide(r.Context(), req)
	if !d.Allow {
		return s.writeDenial(c, &d, nginxDenyStatus(&d))
	}

	ch, err := s.gw.allowChanges(&d)
	if err != nil {
		s.log.Error("policy result cannot be sent to nginx", "decision_id", d.ID, "error", err)
		d = policyErrorDeny(&d)
		return s.writeDenial(c, &d, nginxDenyStatus(&d))
	}
	out := c.Response().Header()
	for _, f := range ch.set {
		out.Add(f.name, f.value)
	}
	for _, name := range s.gw.managedHeaders() {
		if _, ok := out[http.CanonicalHeaderKey(name)]; !ok {
			out.Set(name, "")
		}
	}
	return c.NoContent(http.StatusOK)
}

// contentLength returns the content-length header as a number, -1 when
// absent or invalid.
func contentLength(headers map[string]string) int64 {
	v, ok := headers["content-length"]
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// forwardedClient returns the client address nginx appended last to
// X-Forwarded-For ($proxy_add_x_forwarded_for), or X-Real-IP. Earlier
// X-Forwarded-For entries come from the client and are not trusted.
func forwardedClient(h http.Header) string {
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		last := xff[len(xff)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		return strings.TrimSpace(last)
	}
	return strings.TrimSpace(h.Get("X-Real-IP"))
}
