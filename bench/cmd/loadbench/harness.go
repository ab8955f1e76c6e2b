package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// harness runs the scenarios and collects their results.
type harness struct {
	opts    options
	log     *slog.Logger
	machine machineFacts
}

// targetStatus is the outcome of one target check.
type targetStatus string

const (
	targetMet         targetStatus = "met"
	targetNotMet      targetStatus = "NOT met"
	targetNotMeasured targetStatus = "not measured"
)

// targetCheck is one stated target and what this run measured for it.
type targetCheck struct {
	target   string
	measured string
	status   targetStatus
}

// scenarioResult is the outcome of one scenario, as the report shows it.
type scenarioResult struct {
	id    string
	title string
	// skipped, when set, is the reason the scenario could not run.
	skipped  string
	setup    []string
	notes    []string
	runs     []*runResult
	targets  []targetCheck
	duration time.Duration
}

func (s *scenarioResult) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

func (s *scenarioResult) target(target, measured string, met bool) {
	status := targetNotMet
	if met {
		status = targetMet
	}
	s.targets = append(s.targets, targetCheck{target: target, measured: measured, status: status})
}

func (s *scenarioResult) unmeasured(target, why string) {
	s.targets = append(s.targets, targetCheck{target: target, measured: why, status: targetNotMeasured})
}

// find returns the run of server with label, or nil.
func (s *scenarioResult) find(server, label string) *runResult {
	for _, r := range s.runs {
		if r.server == server && r.label == label {
			return r
		}
	}
	return nil
}

// scenario is one measured workload.
type scenario struct {
	id    string
	title string
	run   func(ctx context.Context, h *harness, res *scenarioResult) error
}

// scenarios lists every scenario in report order.
var allScenarios = []scenario{
	{"policy", "1. Policy only: OPA REST data API, same Rego and input", runPolicyScenario},
	{"direct", "1b. Direct decision API without a token (AuthZEN body), audit durability batch", runDirectScenario},
	{"jwt", "2. Direct decision API with an ES256 JWT and policy", runJWTScenario},
	{"webhook", "3. Backchannel message: Standard Webhooks signature, Redis replay state, audit batch", runWebhookScenario},
	{"grpc", "4. Envoy ext_authz gRPC Check with the policy", runGRPCScenario},
	{"reload", "5. Bundle reload every second under load", runReloadScenario},
}

// runAll runs the selected scenarios and returns the Markdown report.
func (h *harness) runAll(ctx context.Context) (string, error) {
	selected := map[string]bool{}
	for _, id := range strings.Split(h.opts.scenarios, ",") {
		selected[strings.TrimSpace(id)] = true
	}

	h.machine = readMachine(h.opts)
	h.machine.loadBefore = h.waitQuiet(ctx)
	started := time.Now()

	var results []*scenarioResult
	for _, sc := range allScenarios {
		if !selected["all"] && !selected[sc.id] {
			continue
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		res := &scenarioResult{id: sc.id, title: sc.title}
		h.log.Info("scenario started", "scenario", sc.id)
		began := time.Now()
		if err := sc.run(ctx, h, res); err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			res.skipped = "failed: " + err.Error()
			h.log.Error("scenario failed", "scenario", sc.id, "error", err)
		}
		res.duration = time.Since(began)
		h.log.Info("scenario finished", "scenario", sc.id, "skipped", res.skipped,
			"seconds", int(res.duration.Seconds()))
		results = append(results, res)
	}
	h.machine.loadAfter = loadAverage()
	h.machine.elapsed = time.Since(started)
	return renderReport(h.machine, h.opts, results), nil
}

// waitQuiet waits, up to -wait-quiet, until the 1-minute load average is
// below -max-load, and returns the load average it starts measuring at.
func (h *harness) waitQuiet(ctx context.Context) [3]float64 {
	deadline := time.Now().Add(h.opts.waitQuiet)
	for {
		load := loadAverage()
		if load[0] < h.opts.maxLoad || time.Now().After(deadline) || ctx.Err() != nil {
			return load
		}
		h.log.Info("waiting for a quiet machine", "load1", load[0], "max_load", h.opts.maxLoad)
		select {
		case <-ctx.Done():
		case <-time.After(15 * time.Second):
		}
	}
}

// machineFacts describe where and how the numbers were taken.
type machineFacts struct {
	cores      int
	cpuModel   string
	memTotal   string
	kernel     string
	goVersion  string
	opaVersion string
	pdpVersion string
	gitCommit  string
	loadBefore [3]float64
	loadAfter  [3]float64
	elapsed    time.Duration
	date       time.Time
}

func readMachine(o options) machineFacts {
	m := machineFacts{cores: runtime.NumCPU(), goVersion: runtime.Version(), date: time.Now().UTC()}
	m.cpuModel = procField("/proc/cpuinfo", "model name")
	m.memTotal = procField("/proc/meminfo", "MemTotal")
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command(o.opaBin, "version").Output(); err == nil {
		m.opaVersion = firstLineWith(string(out), "Version:")
	}
	if out, err := exec.Command(o.pdpBin, "version").Output(); err == nil {
		m.pdpVersion = strings.TrimSpace(string(out))
	}
	if o.revision != "" {
		m.gitCommit = o.revision
	} else if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.gitCommit = strings.TrimSpace(string(out))
		// make bench rewrites the report files before this runs, so they
		// do not count as changes to the measured code.
		status := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--",
			".", ":!bench/micro.txt", ":!bench/RESULTS.md")
		if out, err := status.Output(); err == nil && len(out) > 0 {
			m.gitCommit += " (work tree has uncommitted changes)"
		}
	}
	return m
}

// procField returns the value of the first "name : value" line of a /proc
// file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == name {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
}

func firstLineWith(text, prefix string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(strings.TrimPrefix(line, prefix))
		}
	}
	return strings.TrimSpace(text)
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() [3]float64 {
	var load [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return load
	}
	fields := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(fields); i++ {
		load[i], _ = strconv.ParseFloat(fields[i], 64)
	}
	return load
}
