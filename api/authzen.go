package api

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/authgate/pdp/pdp"
)

// maxAuthZENEvaluations caps the items of one batch request; each item is
// one decision with its own audit record.
const maxAuthZENEvaluations = 1000

// AuthZEN batch semantics (options.evaluations_semantic).
const (
	semanticExecuteAll          = "execute_all"
	semanticDenyOnFirstDeny     = "deny_on_first_deny"
	semanticPermitOnFirstPermit = "permit_on_first_permit"
)

// authzenEvaluation is an AuthZEN evaluation request or one item of a
// batch. Nil members of a batch item take the request's defaults.
type authzenEvaluation struct {
	Subject  *pdp.Subject   `json:"subject,omitempty"`
	Action   *pdp.Action    `json:"action,omitempty"`
	Resource *pdp.Resource  `json:"resource,omitempty"`
	Context  map[string]any `json:"context,omitempty"`
}

// authzenEvaluationsRequest is the body of POST /access/v1/evaluations.
type authzenEvaluationsRequest struct {
	authzenEvaluation
	Evaluations []authzenEvaluation `json:"evaluations"`
	Options     struct {
		EvaluationsSemantic string `json:"evaluations_semantic"`
	} `json:"options"`
}

// authzenDecision is one AuthZEN evaluation response.
type authzenDecision struct {
	Decision bool           `json:"decision"`
	Context  authzenContext `json:"context"`
}

// authzenContext explains a decision: the reason code and the decision id
// under which it was audited.
type authzenContext struct {
	Reason     pdp.Reason `json:"reason"`
	DecisionID string     `json:"decision_id"`
	Reasons    []string   `json:"reasons,omitempty"`
}

// authzenEvaluate handles POST /access/v1/evaluation. Every decision, deny
// and engine failure included, gets a 200 response with "decision"; only a
// body that cannot be read gets 400 or 413.
func (s *Server) authzenEvaluate(c echo.Context) error {
	echoRequestID(c)
	raw, err := s.readBody(c)
	if err != nil {
		return s.rejectAuthZEN(c, &pdp.Request{FrontDoor: pdp.FrontDoorAuthZEN}, err)
	}
	var ev authzenEvaluation
	if err := decodeAuthZEN(raw, &ev); err != nil {
		return s.rejectAuthZEN(c, &pdp.Request{FrontDoor: pdp.FrontDoorAuthZEN}, err)
	}
	req, err := ev.toRequest(c)
	if err != nil {
		return s.rejectAuthZEN(c, req, err)
	}
	d := s.opts.Engine.Decide(c.Request().Context(), req)
	return c.JSON(http.StatusOK, authzenAnswer(&d))
}

// authzenEvaluations handles POST /access/v1/evaluations. Without an
// evaluations array it behaves as a single evaluation. Each item takes the
// request's subject, action, resource and context for any of them it
// leaves out. An invalid item gets decision false with reason
// request.invalid and counts as a deny for the batch semantics.
func (s *Server) authzenEvaluations(c echo.Context) error {
	echoRequestID(c)
	raw, err := s.readBody(c)
	if err != nil {
		return s.rejectAuthZEN(c, &pdp.Request{FrontDoor: pdp.FrontDoorAuthZEN}, err)
	}
	var batch authzenEvaluationsRequest
	if err := decodeAuthZEN(raw, &batch); err != nil {
		return s.rejectAuthZEN(c, &pdp.Request{FrontDoor: pdp.FrontDoorAuthZEN}, err)
	}
	if len(batch.Evaluations) == 0 {
		req, err := batch.authzenEvaluation.toRequest(c)
		if err != nil {
			return s.rejectAuthZEN(c, req, err)
		}
		d := s.opts.Engine.Decide(c.Request().Context(), req)
		return c.JSON(http.StatusOK, authzenAnswer(&d))
	}
	if err := batch.validate(); err != nil {
		return s.rejectAuthZEN(c, &pdp.Request{FrontDoor: pdp.FrontDoorAuthZEN}, err)
	}

	results := make([]authzenDecision, 0, len(batch.Evaluations))
	for _, item := range batch.Evaluations {
		ans := s.authzenItem(c, batch.withDefaults(item))
		results = append(results, ans)
		if stopBatch(batch.Options.EvaluationsSemantic, ans.Decision) {
			break
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"evaluations": results})
}

func (s *Server) authzenItem(c echo.Context, ev authzenEvaluation) authzenDecision {
	ctx := c.Request().Context()
	req, err := ev.toRequest(c)
	if err != nil {
		d := s.opts.Engine.Reject(ctx, req, pdp.ReasonOf(err, pdp.ReasonRequestInvalid), err)
		return authzenAnswer(&d)
	}
	d := s.opts.Engine.Decide(ctx, req)
	return authzenAnswer(&d)
}

func (b *authzenEvaluationsRequest) validate() error {
	if len(b.Evaluations) > maxAuthZENEvaluations {
		return pdp.Denyf(pdp.ReasonRequestInvalid, "%d evaluations exceed the maximum of %d",
			len(b.Evaluations), maxAuthZENEvaluations)
	}
	switch b.Options.EvaluationsSemantic {
	case "", semanticExecuteAll, semanticDenyOnFirstDeny, semanticPermitOnFirstPermit:
		return nil
	}
	return pdp.Denyf(pdp.ReasonRequestInvalid, "options.evaluations_semantic %q is not one of %s, %s, %s",
		b.Options.EvaluationsSemantic, semanticExecuteAll, semanticDenyOnFirstDeny, semanticPermitOnFirstPermit)
}

// withDefaults fills the members item leaves out from the request.
func (b *authzenEvaluationsRequest) withDefaults(item authzenEvaluation) authzenEvaluation {
	if item.Subject == nil {
		item.Subject = b.Subject
	}
	if item.Action == nil {
		item.Action = b.Action
	}
	if item.Resource == nil {
		item.Resource = b.Resource
	}
	if item.Context == nil {
		item.Context = b.Context
	}
	return item
}

// stopBatch reports whether a batch with the given semantic stops after a
// decision.
func stopBatch(semantic string, decision bool) bool {
	switch semantic {
	case semanticDenyOnFirstDeny:
		return !decision
	case semanticPermitOnFirstPermit:
		return decision
	}
	return false
}

// toRequest checks the members AuthZEN requires (subject type and id,
// action name, resource type and id) and builds the pdp.Request. It always
// returns a request, for the audit record of a rejection.
func (ev authzenEvaluation) toRequest(c echo.Context) (*pdp.Request, error) {
	req := &pdp.Request{
		FrontDoor: pdp.FrontDoorAuthZEN,
		Context:   ev.Context,
	}
	var missing []string
	if ev.Subject != nil {
		req.Subject = *ev.Subject
	}
	if ev.Action != nil {
		req.Action = *ev.Action
	}
	if ev.Resource != nil {
		req.Resource = *ev.Resource
	}
	if req.Subject.Type == "" || req.Subject.ID == "" {
		missing = append(missing, "subject.type and subject.id")
	}
	if req.Action.Name == "" {
		missing = append(missing, "action.name")
	}
	if req.Resource.Type == "" || req.Resource.ID == "" {
		missing = append(missing, "resource.type and resource.id")
	}
	if len(missing) > 0 {
		return req, pdp.Denyf(pdp.ReasonRequestInvalid, "missing %s", strings.Join(missing, ", "))
	}
	if req.Context == nil {
		req.Context = map[string]any{}
	}
	return req, nil
}

// rejectAuthZEN records a deny for a request that could not be read and
// responds with the reason's status and an AuthZEN decision body.
func (s *Server) rejectAuthZEN(c echo.Context, req *pdp.Request, err error) error {
	reason := pdp.ReasonOf(err, pdp.ReasonRequestInvalid)
	d := s.opts.Engine.Reject(c.Request().Context(), req, reason, err)
	return c.JSON(reason.HTTPStatus(), authzenAnswer(&d))
}

func authzenAnswer(d *pdp.Decision) authzenDecision {
	return authzenDecision{
		Decision: d.Allow,
		Context:  authzenContext{Reason: d.Reason, DecisionID: d.ID, Reasons: d.Reasons},
	}
}

// decodeAuthZEN decodes a request body; unknown members are ignored, as
// AuthZEN leaves room for extensions.
func decodeAuthZEN(raw []byte, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return pdp.Denyf(pdp.ReasonRequestInvalid, "empty request body")
	}
	if err := decodeOPAJSON(raw, v); err != nil {
		return pdp.Deny(pdp.ReasonRequestInvalid, fmt.Errorf("decode JSON body: %w", err))
	}
	return nil
}

// echoRequestID copies the caller's X-Request-ID to the response, so the
// caller can match responses to its requests.
func echoRequestID(c echo.Context) {
	if id := c.Request().Header.Get("X-Request-ID"); id != "" {
		c.Response().Header().Set("X-Request-ID", id)
	}
}

// authzenConfiguration handles GET /.well-known/authzen-configuration, the
// PDP metadata document.
func (s *Server) authzenConfiguration(c echo.Context) error {
	base := strings.TrimRight(s.gw.AuthZEN.BaseURL, "/")
	if base == "" {
		scheme := "http"
		if c.Request().TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + c.Request().Host
	}
	return c.JSON(http.StatusOK, map[string]string{
		"policy_decision_point":       base,
		"access_evaluation_endpoint":  base + "/access/v1/evaluation",
		"access_evaluations_endpoint": base + "/access/v1/evaluations",
	})
}
