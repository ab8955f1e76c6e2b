package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Load settings shared by every scenario, so both servers see the same
// client.
// saturationWorkers is the number of concurrent requests in a saturation
// run, the same for both servers (flag -concurrency).
var saturationWorkers = 16

const (
	// fixedRateWorkers starts a fixed-rate run; vegeta adds workers up to
	// maxFixedRateWorkers when every worker is waiting for a response.
	fixedRateWorkers    = 16
	maxFixedRateWorkers = 512
	requestTimeout      = 10 * time.Second
	// maxResponseBody is the number of bytes of each response body kept for the check.
	maxResponseBody = 16 << 10
)

// request is one HTTP request of a workload.
type request struct {
	method string
	url    string
	header http.Header
	body   []byte
}

// httpWorkload describes the requests of one scenario and how to judge a
// response.
type httpWorkload struct {
	// next returns the request with sequence number seq; it is called
	// concurrently and must not block.
	next func(seq uint64) request
	// check returns nil when a response with this status and body is the
	// expected decision.
	check func(status int, body []byte) error
}

// sample is one request's outcome.
type sample struct {
	start   time.Time
	latency time.Duration
	failed  bool
}

// runResult is the outcome of one measured run against one server.
type runResult struct {
	server string
	// label names the load: "saturation" or "N/s".
	label string
	// rate is the requested rate per second, 0 at saturation.
	rate    int
	workers int
	elapsed time.Duration
	samples []sample
	// sorted holds the latencies of every request in ascending order.
	sorted    []time.Duration
	failed    int
	errors    map[string]int
	usage     usage
	clientCPU time.Duration
	// tool names the load generator.
	tool string
	// metrics holds the PDP's own metrics over the run, nil when the
	// server does not serve them.
	metrics *serverMetrics
}

// requests returns the number of requests sent.
func (r *runResult) requests() int { return len(r.samples) }

// throughput returns the successful decisions per second.
func (r *runResult) throughput() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(len(r.samples)-r.failed) / r.elapsed.Seconds()
}

// percentile returns the latency below which the fraction q of requests
// finished (nearest rank).
func (r *runResult) percentile(q float64) time.Duration {
	n := len(r.sorted)
	if n == 0 {
		return 0
	}
	rank := int(q*float64(n)+0.999999) - 1
	return r.sorted[min(max(rank, 0), n-1)]
}

// cpuPerDecision returns the server's CPU time per request.
func (r *runResult) cpuPerDecision() time.Duration {
	if len(r.samples) == 0 {
		return 0
	}
	return r.usage.cpu / time.Duration(len(r.samples))
}

// addError counts a failure under a short key and marks the sample failed.
func (r *runResult) addError(s *sample, key string) {
	s.failed = true
	r.failed++
	if r.errors == nil {
		r.errors = map[string]int{}
	}
	if len(key) > 120 {
		key = key[:120]
	}
	r.errors[key]++
}

// finish sorts the latencies.
func (r *runResult) finish() {
	r.sorted = make([]time.Duration, len(r.samples))
	for i, s := range r.samples {
		r.sorted[i] = s.latency
	}
	slices.Sort(r.sorted)
}

// runHTTP drives w against srv for d, at rate requests per second or, with
// rate 0, as fast as saturationWorkers concurrent requests allow.
func runHTTP(ctx context.Context, srv *server, w httpWorkload, rate int, d time.Duration) (*runResult, error) {
	workers, maxWorkers := uint64(fixedRateWorkers), uint64(maxFixedRateWorkers)
	pacer := vegeta.Rate{Freq: rate, Per: time.Second}
	label := fmt.Sprintf("%d/s", rate)
	if rate == 0 {
		workers, maxWorkers = uint64(saturationWorkers), uint64(saturationWorkers)
		pacer = vegeta.Rate{}
		label = "saturation"
	}
	attacker := vegeta.NewAttacker(
		vegeta.Workers(workers), vegeta.MaxWorkers(maxWorkers),
		vegeta.Connections(int(maxWorkers)), vegeta.KeepAlive(true), vegeta.HTTP2(false),
		vegeta.Timeout(requestTimeout), vegeta.MaxBody(maxResponseBody), vegeta.Redirects(-1),
	)

	var seq atomic.Uint64
	targeter := func(t *vegeta.Target) error {
		req := w.next(seq.Add(1) - 1)
		t.Method, t.URL, t.Header, t.Body = req.method, req.url, req.header, req.body
		return nil
	}

	metricsBefore := scrapeServerMetrics(ctx, srv)
	meter, err := startUsage(srv.pid())
	if err != nil {
		return nil, err
	}
	clientStart := selfCPU()
	res := &runResult{server: srv.name, label: label, rate: rate, tool: "vegeta", samples: make([]sample, 0, 1024)}
	began := time.Now()
	profileDone := startProfile(ctx, srv, label, d)
	defer profileDone()
	results := attacker.Attack(targeter, pacer, d, srv.name)
	for r := range results {
		if ctx.Err() != nil {
			attacker.Stop()
		}
		s := sample{start: r.Timestamp, latency: r.Latency}
		switch {
		case r.Error != "" && r.Code == 0:
			res.addError(&s, "transport: "+r.Error)
		default:
			if err := w.check(int(r.Code), r.Body); err != nil {
				res.addError(&s, err.Error())
			}
		}
		res.samples = append(res.samples, s)
	}
	res.elapsed = time.Since(began)
	res.clientCPU = selfCPU() - clientStart
	res.workers = int(workers)
	if res.usage, err = meter.stop(); err != nil {
		return nil, err
	}
	res.metrics = scrapeServerMetrics(ctx, srv).since(metricsBefore)
	res.finish()
	return res, ctx.Err()
}

// scrapeServerMetrics returns the PDP's metrics, nil for other servers.
func scrapeServerMetrics(ctx context.Context, srv *server) *serverMetrics {
	if !strings.HasPrefix(srv.name, serverPDP) {
		return nil
	}
	return scrapeMetrics(ctx, srv)
}

// ownTime returns the PDP's decision latency histogram of the run, nil
// when there is none.
func (r *runResult) ownTime() histogram {
	if r.metrics == nil {
		return nil
	}
	return r.metrics.decisions
}
