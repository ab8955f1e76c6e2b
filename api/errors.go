package api

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/authgate/pdp/pdp"
)

// errorBody is the JSON body of every error response: a stable reason code and
// a generic text, never internals.
type errorBody struct {
	DecisionID string     `json:"decision_id,omitempty"`
	Allow      bool       `json:"allow"`
	Reason     pdp.Reason `json:"reason"`
	Message    string     `json:"message"`
}

// errorHandler turns echo's routing and binding errors into JSON with a
// reason code. mapStatus, when set, adjusts the status per path.
func errorHandler(log *slog.Logger, mapStatus func(path string, status int) int) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status := http.StatusInternalServerError
		var he *echo.HTTPError
		if errors.As(err, &he) {
			status = he.Code
		} else {
			log.Error("request failed", "path", c.Path(), "error", err)
		}
		reason := pdp.ReasonRequestInvalid
		switch status {
		case http.StatusRequestEntityTooLarge:
			reason = pdp.ReasonRequestTooLarge
		case http.StatusInternalServerError:
			reason = pdp.ReasonPolicyError
		}
		body := errorBody{Reason: reason, Message: http.StatusText(status)}
		if mapStatus != nil {
			status = mapStatus(c.Request().URL.Path, status)
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		_ = c.JSON(status, body)
	}
}
