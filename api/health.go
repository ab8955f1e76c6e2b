package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// healthz reports that the process is up.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports whether every dependency is ready. Failing checks are
// named, their errors go to the log only.
func (s *Server) readyz(c echo.Context) error {
	select {
	case <-s.draining:
		return c.JSON(http.StatusServiceUnavailable, map[string]any{
			"status": "draining",
		})
	default:
	}
	failing := []string{}
	for _, rc := range s.opts.Readiness {
		if err := rc.Check(c.Request().Context()); err != nil {
			failing = append(failing, rc.Name)
			s.log.Debug("readiness check failed", "check", rc.Name, "error", err)
		}
	}
	if len(failing) > 0 {
		return c.JSON(http.StatusServiceUnavailable, map[string]any{
			"status": "not_ready", "failing": failing,
		})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
