package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/authgate/pdp/pdp"
)

// Querier evaluates data paths for the OPA REST API; *pdp.Engine
// implements it. The server registers /v1/data and POST / only when
// Options.Engine implements Querier.
type Querier interface {
	Query(ctx context.Context, req *pdp.Request, path string, input any) (pdp.Decision, bool, error)
}

var _ Querier = (*pdp.Engine)(nil)

// OPA's error codes and messages (server/types in OPA v1), so clients
// written for OPA can branch on them.
const (
	opaCodeInvalidParameter  = "invalid_parameter"
	opaCodeInternal          = "internal_error"
	opaCodeUndefinedDocument = "undefined_document"
	opaCodeAPIUsageWarning   = "api_usage_warning"
	opaMsgInputKeyMissing    = "'input' key missing from the request"
	opaMsgEvaluationError    = "error(s) occurred while evaluating query"
)

// opaError is OPA's error body.
type opaError struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	DecisionID string `json:"decision_id,omitempty"`
}

// opaWarning is OPA's warning object in a data response.
type opaWarning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// opaDataResponse is OPA's v1 data response. Result is omitted when the
// document is undefined.
type opaDataResponse struct {
	DecisionID string      `json:"decision_id"`
	Result     *any        `json:"result,omitempty"`
	Warning    *opaWarning `json:"warning,omitempty"`
}

// opaDataPost handles POST /v1/data[/{path}] with a body of
// {"input": ...}. An empty body or one without "input" evaluates with no
// input and adds OPA's api_usage_warning.
func (s *Server) opaDataPost(c echo.Context) error {
	req, path, ok := s.opaRequest(c)
	if !ok {
		return nil
	}
	raw, err := s.readBody(c)
	if err != nil {
		return s.opaReject(c, req, err)
	}
	input, err := inputOfBody(raw)
	if err != nil {
		return s.opaReject(c, req, pdp.Deny(pdp.ReasonRequestInvalid,
			fmt.Errorf("body contains malformed input document: %w", err)))
	}
	resp, status := s.runOPAQuery(c, req, path, input)
	if status == http.StatusOK && input == nil {
		resp.(*opaDataResponse).Warning = &opaWarning{Code: opaCodeAPIUsageWarning, Message: opaMsgInputKeyMissing}
	}
	return writeOPA(c, status, resp)
}

// opaDataGet handles GET /v1/data[/{path}]. As in OPA, the optional input
// query parameter holds the input document as JSON; the last one counts.
func (s *Server) opaDataGet(c echo.Context) error {
	req, path, ok := s.opaRequest(c)
	if !ok {
		return nil
	}
	// As in OPA, input=null is a null input, not a missing one.
	var input any
	if values := c.QueryParams()["input"]; len(values) > 0 {
		value, err := parseJSONValue([]byte(values[len(values)-1]))
		if err != nil {
			return s.opaReject(c, req, pdp.Deny(pdp.ReasonRequestInvalid,
				fmt.Errorf("parameter contains malformed input document: %w", err)))
		}
		input = value
	}
	resp, status := s.runOPAQuery(c, req, path, input)
	return writeOPA(c, status, resp)
}

// opaDefaultDecision handles POST /, OPA's default decision: the whole body
// is the input, the response is the bare result, and an undefined decision is
// 404 undefined_document.
func (s *Server) opaDefaultDecision(c echo.Context) error {
	path := strings.Trim(s.gw.OPARest.DefaultDecision, "/")
	req := s.opaBaseRequest(c, path)
	raw, err := s.readBody(c)
	if err != nil {
		return s.opaReject(c, req, err)
	}
	// As in OPA, an empty body is a null input.
	var input any = ast.NullValue
	if len(bytes.TrimSpace(raw)) > 0 {
		value, err := parseJSONValue(raw)
		if err != nil {
			return s.opaReject(c, req, pdp.Deny(pdp.ReasonRequestInvalid,
				fmt.Errorf("unexpected parse error for input: %w", err)))
		}
		input = value
	}
	resp, status := s.runOPAQuery(c, req, path, input)
	if status != http.StatusOK {
		return writeOPA(c, status, resp)
	}
	data := resp.(*opaDataResponse)
	if data.Result == nil {
		return writeOPA(c, http.StatusNotFound, opaError{
			Code:       opaCodeUndefinedDocument,
			Message:    "document missing: data." + strings.ReplaceAll(path, "/", "."),
			DecisionID: data.DecisionID,
		})
	}
	return writeOPA(c, http.StatusOK, *data.Result)
}

// opaRequest reads and checks the data path of a /v1/data request. It
// responds 400 itself, as OPA does, when a segment holds a double quote.
func (s *Server) opaRequest(c echo.Context) (*pdp.Request, string, bool) {
	escaped := c.Request().URL.EscapedPath()
	path := strings.Trim(strings.TrimPrefix(escaped, "/v1/data"), "/")
	req := s.opaBaseRequest(c, path)
	for _, seg := range strings.Split(path, "/") {
		if decoded, err := url.PathUnescape(seg); err == nil {
			seg = decoded
		}
		if strings.Contains(seg, `"`) {
			_ = s.opaReject(c, req, pdp.Denyf(pdp.ReasonRequestInvalid, "invalid path: invalid ref term '%s'", seg))
			return nil, "", false
		}
	}
	return req, path, true
}

func (s *Server) opaBaseRequest(c echo.Context, path string) *pdp.Request {
	r := c.Request()
	return &pdp.Request{
		FrontDoor: pdp.FrontDoorOPA,
		Action:    pdp.Action{Name: r.Method},
		Resource:  pdp.Resource{Type: "data", ID: path},
	}
}

// runOPAQuery evaluates path and returns the response body and status. An
// evaluation that fails is OPA's 500 internal_error; its detail goes to the
// server log only.
func (s *Server) runOPAQuery(c echo.Context, req *pdp.Request, path string, input any) (any, int) {
	d, defined, err := s.querier.Query(c.Request().Context(), req, path, input)
	if err != nil {
		s.log.Warn("data query failed", "decision_id", d.ID, "reason", string(d.Reason), "error", err)
		msg := opaMsgEvaluationError
		if d.Reason != pdp.ReasonPolicyError {
			msg = d.Reason.Text()
		}
		return opaError{Code: opaCodeInternal, Message: msg, DecisionID: d.ID}, http.StatusInternalServerError
	}
	resp := &opaDataResponse{DecisionID: d.ID}
	if defined {
		result := d.Result
		resp.Result = &result
	}
	return resp, http.StatusOK
}

// opaReject audits a request that could not be read and responds with OPA's
// 400 invalid_parameter (413 for a body over the limit).
func (s *Server) opaReject(c echo.Context, req *pdp.Request, err error) error {
	reason := pdp.ReasonOf(err, pdp.ReasonRequestInvalid)
	d := s.opts.Engine.Reject(c.Request().Context(), req, reason, err)
	status := http.StatusBadRequest
	msg := reason.Text()
	var re *pdp.ReasonError
	if errors.As(err, &re) && re.Err != nil && reason == pdp.ReasonRequestInvalid {
		// The parse error names only the caller's own bytes, as OPA's does.
		msg = re.Err.Error()
	}
	code := opaCodeInvalidParameter
	switch reason {
	case pdp.ReasonRequestTooLarge:
		status = http.StatusRequestEntityTooLarge
	case pdp.ReasonTimeout:
		status, code = http.StatusServiceUnavailable, opaCodeInternal
	}
	return writeOPA(c, status, opaError{Code: code, Message: msg, DecisionID: d.ID})
}

// decodeOPAJSON decodes one JSON value with numbers kept exact. A value of
// the wrong JSON type is reported in JSON terms, not Go types.
func decodeOPAJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			if typeErr.Field == "" {
				return fmt.Errorf("the body is a JSON %s, want an object", typeErr.Value)
			}
			return fmt.Errorf("field %q is a JSON %s of the wrong type", typeErr.Field, typeErr.Value)
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// writeOPA writes v as JSON, indented when ?pretty=true as in OPA.
func writeOPA(c echo.Context, status int, v any) error {
	if c.QueryParam("pretty") == "true" {
		return c.JSONPretty(status, v, "  ")
	}
	return c.JSON(status, v)
}
