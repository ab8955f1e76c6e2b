package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/authgate/pdp/bench/scenarios"
	"github.com/authgate/pdp/policies"
)

// Server names in the report.
const (
	serverPDP = "pdp"
	serverOPA = "opa"
)

// scenarioDir creates the work directory of one scenario.
func (h *harness) scenarioDir(id string) (string, error) {
	dir := filepath.Join(h.opts.workDir, id)
	return dir, os.MkdirAll(dir, 0o755)
}

// startPDP writes a configuration file from the base settings merged with
// extra (top-level keys of extra replace the base's) and starts `pdp
// serve`. Both listeners get free loopback ports, so the harness never
// collides with a PDP on the default ports.
func (h *harness) startPDP(ctx context.Context, dir string, extra map[string]any) (*server, error) {
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	grpcPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"instance": "bench",
		"http":     map[string]any{"addr": fmt.Sprintf("%s:%d", loopback, httpPort)},
		"grpc":     map[string]any{"addr": fmt.Sprintf("%s:%d", loopback, grpcPort)},
		"log":      map[string]any{"level": "warn", "format": "json"},
		"audit":    map[string]any{"dir": filepath.Join(dir, "audit"), "durability": "batch"},
	}
	var adminURL string
	if profileDir != "" {
		if cfg["admin"], adminURL, err = adminSettings(dir); err != nil {
			return nil, err
		}
	}
	for k, v := range extra {
		cfg[k] = v
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "pdp.yaml")
	// The file may hold an HMAC secret, so only this user may read it.
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		return nil, err
	}
	baseURL := fmt.Sprintf("http://%s:%d", loopback, httpPort)
	srv, err := startServer(ctx, serverPDP, dir, h.opts.pdpBin, []string{"serve", "--config", cfgPath},
		nil, baseURL, "/readyz")
	if err != nil {
		return nil, err
	}
	srv.grpcAddr = fmt.Sprintf("%s:%d", loopback, grpcPort)
	srv.adminURL = adminURL
	return srv, nil
}

// startOPA starts `opa run --server` on a free loopback port with the
// bundle directory bundleDir. --skip-version-check stops OPA's version
// check, its only outside connection, and the log level is error, so
// neither server writes a log line per request.
func (h *harness) startOPA(ctx context.Context, dir, bundleDir string, extraArgs ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("%s:%d", loopback, port)
	args := append([]string{
		"run", "--server", "--addr", addr, "--skip-version-check",
		"--log-level", "error", "--bundle", bundleDir,
	}, extraArgs...)
	return startServer(ctx, serverOPA, dir, h.opts.opaBin, args, nil, "http://"+addr, "/health")
}

// writeShippedBundle writes the bundle embedded in the PDP binary
// (policies.Bundle) to dir, so OPA evaluates the very same Rego and data.
func writeShippedBundle(dir string) error {
	return fs.WalkDir(policies.Bundle, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(policies.Bundle, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// scenarioFile returns an embedded scenario file.
func scenarioFile(name string) []byte {
	data, err := scenarios.Files.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("scenario file %s is not embedded: %v", name, err))
	}
	return data
}

// scenarioJSON decodes an embedded scenario file.
func scenarioJSON(name string) any {
	var v any
	if err := json.Unmarshal(scenarioFile(name), &v); err != nil {
		panic(fmt.Sprintf("scenario file %s: %v", name, err))
	}
	return v
}

// mustJSON encodes v, which the harness built itself.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// postJSON sends one request and returns the status and body, for probes.
func postJSON(ctx context.Context, url string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	return resp.StatusCode, data, err
}

// jsonHeader is the header of every JSON request.
var jsonHeader = http.Header{"Content-Type": []string{"application/json"}}

// staticWorkload posts the same body to url on every request.
func staticWorkload(url string, body []byte, check func(int, []byte) error) httpWorkload {
	return httpWorkload{
		next: func(uint64) request {
			return request{method: http.MethodPost, url: url, header: jsonHeader, body: body}
		},
		check: check,
	}
}

// Response checks. Each accepts only a 200 whose body is an allow, and
// never puts the body into the error, since a body may contain a token.

// checkDecisionAllow accepts a PDP decision ({"allow": true, ...}).
func checkDecisionAllow(status int, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("status %d", status)
	}
	var d struct {
		Allow  bool   `json:"allow"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("decision is not JSON")
	}
	if !d.Allow {
		return fmt.Errorf("denied: %s", d.Reason)
	}
	return nil
}

// checkDataAllowed accepts an OPA data response whose result is the
// shipped policy's decision object with allowed true.
func checkDataAllowed(status int, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("status %d", status)
	}
	var resp struct {
		Result *struct {
			Allowed bool     `json:"allowed"`
			Reasons []string `json:"reasons"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("response is not JSON")
	}
	if resp.Result == nil {
		return fmt.Errorf("result undefined")
	}
	if !resp.Result.Allowed {
		return fmt.Errorf("denied: %v", resp.Result.Reasons)
	}
	return nil
}

// runPair runs the same load against each server in turn and adds the
// results to res.
func (h *harness) runPair(ctx context.Context, res *scenarioResult, rate int, targets ...loadTarget) error {
	for _, t := range targets {
		h.log.Info("run started", "scenario", res.id, "server", t.srv.name, "rate", rateLabel(rate))
		r, err := runHTTP(ctx, t.srv, t.workload, rate, h.opts.duration)
		if err != nil {
			return err
		}
		h.log.Info("run finished", "scenario", res.id, "server", t.srv.name, "rate", rateLabel(rate),
			"throughput", int(r.throughput()), "p99_us", r.percentile(0.99).Microseconds(), "failed", r.failed)
		res.runs = append(res.runs, r)
	}
	return nil
}

// warm sends unmeasured load to each target.
func (h *harness) warm(ctx context.Context, targets ...loadTarget) error {
	for _, t := range targets {
		if _, err := runHTTP(ctx, t.srv, t.workload, 0, h.opts.warmup); err != nil {
			return err
		}
	}
	return nil
}

// loadTarget is a server with the workload it is driven with.
type loadTarget struct {
	srv      *server
	workload httpWorkload
}

func rateLabel(rate int) string {
	if rate == 0 {
		return "saturation"
	}
	return strconv.Itoa(rate) + "/s"
}
