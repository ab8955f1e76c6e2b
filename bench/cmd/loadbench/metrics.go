package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// decisionHistogram is the PDP's own decision latency metric: from the
// start of a decision to its response, audit included, front door adapters
// and HTTP excluded.
const decisionHistogram = "pdp_decision_duration_seconds_bucket"

// histogram maps a bucket's upper bound in seconds to the cumulative count
// of observations, summed over every label but le.
type histogram map[float64]float64

// stepMetric is the PDP's per-step latency metric.
const stepMetric = "pdp_decision_step_duration_seconds"

// serverMetrics is the part of the PDP's /metrics the report uses: the
// decision latency histogram and the time spent per pipeline step.
type serverMetrics struct {
	decisions histogram
	// stepSeconds and stepCount are the sum and count of stepMetric per
	// step, over both outcomes.
	stepSeconds map[string]float64
	stepCount   map[string]float64
}

func newServerMetrics() *serverMetrics {
	return &serverMetrics{decisions: histogram{}, stepSeconds: map[string]float64{}, stepCount: map[string]float64{}}
}

// scrapeMetrics reads the PDP's GET /metrics, from the admin listener
// when srv has one. It returns nil when the PDP does not serve the
// decision histogram.
func scrapeMetrics(ctx context.Context, srv *server) *serverMetrics {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	url := srv.baseURL + "/metrics"
	if srv.adminURL != "" {
		url = srv.adminURL + "/metrics"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil
	}
	if srv.adminURL != "" {
		req.Header.Set("Authorization", "Bearer "+adminToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}

	m := newServerMetrics()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, decisionHistogram+"{"):
			if le, count, ok := parseBucket(line); ok {
				m.decisions[le] += count
			}
		case strings.HasPrefix(line, stepMetric+"_sum{"):
			addStep(m.stepSeconds, line)
		case strings.HasPrefix(line, stepMetric+"_count{"):
			addStep(m.stepCount, line)
		}
	}
	if len(m.decisions) == 0 {
		return nil
	}
	return m
}

// addStep adds the value of one sample line to the total of its step
// label.
func addStep(totals map[string]float64, line string) {
	start := strings.Index(line, `step="`)
	if start < 0 {
		return
	}
	rest := line[start+len(`step="`):]
	end := strings.IndexByte(rest, '"')
	if end < 0 {
		return
	}
	fields := strings.Fields(line[strings.LastIndexByte(line, '}')+1:])
	if len(fields) == 0 {
		return
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return
	}
	totals[rest[:end]] += v
}

// since returns what was observed between before and m, nil when either
// is missing.
func (m *serverMetrics) since(before *serverMetrics) *serverMetrics {
	if m == nil || before == nil {
		return nil
	}
	out := newServerMetrics()
	for le, count := range m.decisions {
		out.decisions[le] = count - before.decisions[le]
	}
	for step, v := range m.stepSeconds {
		out.stepSeconds[step] = v - before.stepSeconds[step]
	}
	for step, v := range m.stepCount {
		out.stepCount[step] = v - before.stepCount[step]
	}
	return out
}

// stepMeans formats the mean time of each pipeline step that ran.
func (m *serverMetrics) stepMeans() string {
	if m == nil {
		return ""
	}
	var parts []string
	for _, step := range []string{"authenticate", "verify", "replay", "policy", "audit"} {
		if m.stepCount[step] == 0 {
			continue
		}
		mean := time.Duration(m.stepSeconds[step] / m.stepCount[step] * float64(time.Second))
		parts = append(parts, step+" "+fmtDur(mean))
	}
	return strings.Join(parts, ", ")
}

// parseBucket reads the le label and the value of one bucket sample line
// of the Prometheus text format.
func parseBucket(line string) (le, count float64, ok bool) {
	start := strings.Index(line, `le="`)
	if start < 0 {
		return 0, 0, false
	}
	rest := line[start+4:]
	end := strings.IndexByte(rest, '"')
	if end < 0 {
		return 0, 0, false
	}
	if rest[:end] == "+Inf" {
		le = math.Inf(1)
	} else {
		v, err := strconv.ParseFloat(rest[:end], 64)
		if err != nil {
			return 0, 0, false
		}
		le = v
	}
	fields := strings.Fields(rest[end:])
	if len(fields) < 2 {
		return 0, 0, false
	}
	count, err := strconv.ParseFloat(fields[1], 64)
	if err != nil {
		return 0, 0, false
	}
	return le, count, true
}

// total returns the number of observations.
func (h histogram) total() float64 {
	return h[math.Inf(1)]
}

// fractionWithin returns the share of observations at or below bound
// seconds, which must be a bucket bound.
func (h histogram) fractionWithin(bound float64) float64 {
	if h.total() == 0 {
		return 0
	}
	return h[bound] / h.total()
}

// quantileBound returns the smallest bucket bound below which at least
// the fraction q of the observations fall: an upper bound of that
// quantile.
func (h histogram) quantileBound(q float64) float64 {
	bounds := make([]float64, 0, len(h))
	for le := range h {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	for _, le := range bounds {
		if h[le] >= q*h.total() {
			return le
		}
	}
	return math.Inf(1)
}

// fmtBound formats a bucket bound in seconds as a latency.
func fmtBound(seconds float64) string {
	if math.IsInf(seconds, 1) {
		return "> 2.5 s"
	}
	return "≤ " + fmtDur(time.Duration(seconds*float64(time.Second)))
}

// describe summarizes the server-side latency of a run for the report.
func (h histogram) describe() string {
	if h == nil || h.total() == 0 {
		return "n/a"
	}
	return fmt.Sprintf("p99 %s, %.1f%% ≤ 1 ms", fmtBound(h.quantileBound(0.99)), 100*h.fractionWithin(0.001))
}
