package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// reloadRate is the request rate while the bundle changes.
const reloadRate = 1000

// reloadWindow is how long after a bundle write a request counts as
// "during a reload" for the report's max latency.
const reloadWindow = 500 * time.Millisecond

// runReloadScenario rewrites a watched bundle directory every second while
// both servers serve decisions at a fixed rate. Each write replaces
// .manifest (a new revision) and a Rego file (a new generation value), so
// every reload compiles the policy again.
func runReloadScenario(ctx context.Context, h *harness, res *scenarioResult) error {
	dir, err := h.scenarioDir(res.id)
	if err != nil {
		return err
	}
	pdpBundle, opaBundle := filepath.Join(dir, "pdp-bundle"), filepath.Join(dir, "opa-bundle")
	for _, b := range []string{pdpBundle, opaBundle} {
		if err := writeShippedBundle(b); err != nil {
			return err
		}
		if err := writeGeneration(dir, b, 0); err != nil {
			return err
		}
	}
	res.setup = append(res.setup,
		fmt.Sprintf("Load: the decision of scenario 1b at %d/s for the run length; every second the harness "+
			"replaces `.manifest` (revision bench-reload-N) and `bench_reload.rego` (package pdp.bench_reload, "+
			"generation := N) in the watched bundle directory, each by writing a temporary file and renaming it.",
			reloadRate),
		"PDP: `bundle.path` set to the directory (file watch on, the default). OPA: `opa run --server --watch --bundle DIR`.",
		"A failed decision is any answer that is not a 200 allow, including transport errors.")

	pdpSrv, err := h.startPDP(ctx, dir, map[string]any{"bundle": map[string]any{"path": pdpBundle}})
	if err != nil {
		return err
	}
	defer pdpSrv.stop()
	opaSrv, err := h.startOPA(ctx, dir, opaBundle, "--watch")
	if err != nil {
		return err
	}
	defer opaSrv.stop()

	request := mustJSON(scenarioJSON("authzen-request.json"))
	pdpLoad := loadTarget{pdpSrv, staticWorkload(pdpSrv.baseURL+"/v1/decision", request, checkDecisionAllow)}
	opaLoad := loadTarget{opaSrv, staticWorkload(opaSrv.baseURL+dataPath,
		mustJSON(map[string]any{"input": scenarioJSON("authzen-request.json")}), checkDataAllowed)}
	if err := checkProbe(ctx, pdpLoad, opaLoad); err != nil {
		return err
	}
	if err := h.warm(ctx, opaLoad, pdpLoad); err != nil {
		return err
	}

	live := map[string]func(ctx context.Context) (int, error){
		serverPDP: func(ctx context.Context) (int, error) { return pdpGeneration(ctx, pdpSrv.baseURL, request) },
		serverOPA: func(ctx context.Context) (int, error) { return opaGeneration(ctx, opaSrv.baseURL) },
	}
	bundles := map[string]string{serverPDP: pdpBundle, serverOPA: opaBundle}
	for _, t := range []loadTarget{opaLoad, pdpLoad} {
		r, rl, err := h.runWithReloads(ctx, dir, bundles[t.srv.name], t, live[t.srv.name])
		if err != nil {
			return err
		}
		res.runs = append(res.runs, r)
		res.note("%s: %d bundle writes, %d observed live before the next write; max latency %s overall, "+
			"%s within %s after a write; %d failed decisions.", t.srv.name, rl.writes, rl.observed,
			fmtDur(r.percentile(1)), fmtDur(rl.maxDuringReload(r)), reloadWindow, r.failed)
		if t.srv.name == serverPDP {
			res.target("Zero failed PDP decisions during reloads",
				fmt.Sprintf("%d failed of %d, %d of %d reloads observed live", r.failed, r.requests(), rl.observed, rl.writes),
				r.failed == 0 && rl.observed > 0)
		}
	}
	return nil
}

// reloadLog records the bundle writes of one run.
type reloadLog struct {
	writes   int
	observed int
	times    []time.Time
}

// maxDuringReload returns the largest latency of a request that started
// within reloadWindow after a write.
func (rl *reloadLog) maxDuringReload(r *runResult) time.Duration {
	var peak time.Duration
	for _, s := range r.samples {
		for _, t := range rl.times {
			if !s.start.Before(t) && s.start.Sub(t) < reloadWindow && s.latency > peak {
				peak = s.latency
			}
		}
	}
	return peak
}

// runWithReloads runs t at reloadRate and writes a new generation into
// bundleDir every second meanwhile. Before each write it calls live for the
// generation the server serves, to count the reloads that took effect.
func (h *harness) runWithReloads(ctx context.Context, dir, bundleDir string, t loadTarget,
	live func(context.Context) (int, error)) (*runResult, *reloadLog, error) {
	rl := &reloadLog{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(time.Second)
		defer ticker.Stop()
		for gen := 1; ; gen++ {
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
			if g, err := live(ctx); err == nil && g == gen-1 && gen > 1 {
				rl.observed++
			}
			if err := writeGeneration(dir, bundleDir, gen); err != nil {
				writeErr = err
				return
			}
			rl.writes++
			rl.times = append(rl.times, time.Now())
		}
	}()
	h.log.Info("run started", "scenario", "reload", "server", t.srv.name, "rate", rateLabel(reloadRate))
	r, err := runHTTP(ctx, t.srv, t.workload, reloadRate, h.opts.duration)
	close(stop)
	wg.Wait()
	if err != nil {
		return nil, nil, err
	}
	if writeErr != nil {
		return nil, nil, writeErr
	}
	// The last write gets a moment to take effect before it is counted.
	time.Sleep(time.Second)
	if g, err := live(ctx); err == nil && g == rl.writes {
		rl.observed++
	}
	r.label = fmt.Sprintf("%d/s, reload every 1s", reloadRate)
	return r, rl, nil
}

// writeGeneration replaces the manifest and the generation policy of a
// bundle directory, each with one rename, so a watcher never reads a
// half-written file.
func writeGeneration(tmpDir, bundleDir string, gen int) error {
	manifest := mustJSON(map[string]any{
		"revision": "bench-reload-" + strconv.Itoa(gen),
		"roots":    []string{"pdp"},
		"metadata": map[string]any{"name": "pdp-example-authz"},
	})
	policy := fmt.Sprintf("package pdp.bench_reload\n\ngeneration := %d\n", gen)
	for name, data := range map[string][]byte{"bench_reload.rego": []byte(policy), ".manifest": manifest} {
		tmp := filepath.Join(tmpDir, "next-"+name)
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(bundleDir, name)); err != nil {
			return err
		}
	}
	return nil
}

// pdpGeneration sends one decision and reads the generation from the
// bundle revision it names.
func pdpGeneration(ctx context.Context, baseURL string, request []byte) (int, error) {
	_, body, err := postJSON(ctx, baseURL+"/v1/decision", request)
	if err != nil {
		return 0, err
	}
	var d struct {
		Revision string `json:"bundle_revision"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return 0, err
	}
	var gen int
	if _, err := fmt.Sscanf(d.Revision, "bench-reload-%d", &gen); err != nil {
		return 0, fmt.Errorf("revision %q: %w", d.Revision, err)
	}
	return gen, nil
}

// opaGeneration reads data.pdp.bench_reload.generation from OPA.
func opaGeneration(ctx context.Context, baseURL string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/v1/data/pdp/bench_reload/generation", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var out struct {
		Result *int `json:"result"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Result == nil {
		return 0, fmt.Errorf("generation undefined")
	}
	return *out.Result, nil
}
