package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/transport"
)

// decisionRequest is the body of POST /v1/decision: an AuthZEN evaluation
// request plus the optional token, original HTTP request and signed message.
type decisionRequest struct {
	Subject  pdp.Subject    `json:"subject"`
	Action   pdp.Action     `json:"action"`
	Resource pdp.Resource   `json:"resource"`
	Context  map[string]any `json:"context"`
	// Token is the caller's bearer token, verified when the route requires one.
	Token   string       `json:"token"`
	HTTP    *httpJSON    `json:"http"`
	Message *messageJSON `json:"message"`
}

// httpJSON is the original HTTP request in a direct decision call.
type httpJSON struct {
	Method        string            `json:"method"`
	Path          string            `json:"path"`
	Host          string            `json:"host"`
	Scheme        string            `json:"scheme"`
	Protocol      string            `json:"protocol"`
	Headers       map[string]string `json:"headers"`
	Body          string            `json:"body"`
	BodyBase64    string            `json:"body_base64"`
	SourceAddress string            `json:"source_address"`
}

// messageJSON is a signed message in a direct decision call. The body must
// be the exact signed bytes: as a string, or base64 for binary bodies.
type messageJSON struct {
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
	BodyBase64 string            `json:"body_base64"`
}

// decision handles POST /v1/decision. A decision, allow or deny, is sent
// with 200; a request that cannot be read gets 400 or 413, each with a
// decision id and reason code.
func (s *Server) decision(c echo.Context) error {
	ctx := c.Request().Context()
	raw, err := s.readBody(c)
	if err != nil {
		return s.reject(c, &pdp.Request{FrontDoor: pdp.FrontDoorDirect}, err)
	}

	var body decisionRequest
	if err := decodeStrictJSON(raw, &body); err != nil {
		return s.reject(c, &pdp.Request{FrontDoor: pdp.FrontDoorDirect},
			pdp.Deny(pdp.ReasonRequestInvalid, err))
	}
	req, err := body.toRequest()
	if err != nil {
		return s.reject(c, &pdp.Request{FrontDoor: pdp.FrontDoorDirect}, err)
	}
	// On a TLS listener that verified a client certificate, the caller is
	// the peer.
	req.Peer = transport.PeerFromState(c.Request().TLS)

	d := s.opts.Engine.Decide(ctx, req)
	return c.JSON(http.StatusOK, d)
}

// reject records a deny for a request that could not be read and responds
// with the reason's status.
func (s *Server) reject(c echo.Context, req *pdp.Request, err error) error {
	reason := pdp.ReasonOf(err, pdp.ReasonRequestInvalid)
	d := s.opts.Engine.Reject(c.Request().Context(), req, reason, err)
	return c.JSON(reason.HTTPStatus(), d)
}

// readBody reads the request body up to the configured limit.
func (s *Server) readBody(c echo.Context) ([]byte, error) {
	limit := s.opts.MaxBodyBytes
	if limit <= 0 {
		limit = 1 << 20
	}
	r := http.MaxBytesReader(c.Response(), c.Request().Body, limit)
	raw, err := io.ReadAll(r)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, pdp.Denyf(pdp.ReasonRequestTooLarge, "body exceeds %d bytes", limit)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, pdp.Deny(pdp.ReasonTimeout, fmt.Errorf("read body: %w", err))
	}
	if err != nil {
		return nil, pdp.Deny(pdp.ReasonRequestInvalid, fmt.Errorf("read body: %w", err))
	}
	return raw, nil
}

// decodeStrictJSON decodes one JSON object, rejecting any other value
// (null included), unknown fields and trailing data.
func decodeStrictJSON(raw []byte, v any) error {
	if trimmed := bytes.TrimLeft(raw, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("decode JSON body: the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("decode JSON body: trailing data after the JSON value")
	}
	return nil
}

func (b *decisionRequest) toRequest() (*pdp.Request, error) {
	req := &pdp.Request{
		FrontDoor: pdp.FrontDoorDirect,
		Subject:   b.Subject, Action: b.Action, Resource: b.Resource, Context: b.Context,
		Token: b.Token,
	}
	if b.HTTP != nil {
		body, err := decodeBody(b.HTTP.Body, b.HTTP.BodyBase64)
		if err != nil {
			return nil, err
		}
		req.HTTP = &pdp.HTTPRequest{
			Method: strings.ToUpper(b.HTTP.Method), Path: b.HTTP.Path, Host: b.HTTP.Host,
			Scheme: b.HTTP.Scheme, Protocol: b.HTTP.Protocol, Headers: lowerKeys(b.HTTP.Headers),
			Body: body, Size: int64(len(body)), SourceAddress: b.HTTP.SourceAddress,
		}
		if req.HTTP.Path == "" {
			req.HTTP.Path = "/"
		}
	}
	if b.Message != nil {
		body, err := decodeBody(b.Message.Body, b.Message.BodyBase64)
		if err != nil {
			return nil, err
		}
		req.Message = &pdp.SignedMessage{Headers: lowerKeys(b.Message.Headers), Body: body}
	}
	return req, nil
}

func decodeBody(text, b64 string) ([]byte, error) {
	if text != "" && b64 != "" {
		return nil, pdp.Denyf(pdp.ReasonRequestInvalid, "set body or body_base64, not both")
	}
	if b64 == "" {
		return []byte(text), nil
	}
	body, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, pdp.Denyf(pdp.ReasonRequestInvalid, "body_base64: %v", err)
	}
	return body, nil
}

// lowerKeys returns headers with lower-cased names, as every input uses.
func lowerKeys(headers map[string]string) map[string]string {
	out := make(map[string]string, len(headers))
	for k, v := range headers {
		out[strings.ToLower(k)] = v
	}
	return out
}
