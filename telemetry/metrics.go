// Package telemetry holds the PDP's Prometheus metrics and OpenTelemetry
// tracing: an implementation of pdp.Observer, the hooks that the Redis,
// JWKS, bundle and audit packages call, and W3C trace context extraction for
// every front door.
package telemetry

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authgate/pdp/pdp"
)

// Namespace prefixes every metric name.
const Namespace = "pdp"

// Label values used in place of values outside the known set, so a bad
// caller cannot create unbounded series.
const (
	labelOther   = "other"
	labelSuccess = "success"
	labelFailure = "failure"
)

// latencyBuckets spans 50µs to 2.5s: the PDP's own work is well under a
// millisecond, while Redis, fsync and policy timeouts reach into seconds.
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
}

var knownFrontDoors = map[string]bool{
	pdp.FrontDoorDirect: true, pdp.FrontDoorOPA: true, pdp.FrontDoorAuthZEN: true,
	pdp.FrontDoorEnvoyGRPC: true, pdp.FrontDoorEnvoyHTTP: true, pdp.FrontDoorNGINX: true,
}

var knownSteps = map[string]bool{
	pdp.StepAuthenticate: true, pdp.StepVerify: true, pdp.StepReplay: true,
	pdp.StepPolicy: true, pdp.StepAudit: true,
}

// Metrics holds every PDP metric family. Its methods are the hooks other
// packages call. All of them are safe for concurrent use and do nothing on
// a nil *Metrics, so a package can hold an optional hook without checks.
type Metrics struct {
	reg prometheus.Registerer

	decisions        *prometheus.CounterVec
	decisionDuration *prometheus.HistogramVec
	stepDuration     *prometheus.HistogramVec
	replayRejections *prometheus.CounterVec
	inFlight         *prometheus.GaugeVec
	limitRejections  *prometheus.CounterVec

	redisDuration *prometheus.HistogramVec
	redisErrors   *prometheus.CounterVec

	jwksRefreshes   *prometheus.CounterVec
	jwksLastSuccess *prometheus.GaugeVec

	bundleMu          sync.Mutex
	bundleInfo        *prometheus.GaugeVec
	bundleActivations *prometheus.CounterVec
	bundleLastSuccess prometheus.Gauge
	bundleLastFailure prometheus.Gauge

	auditRecords prometheus.Counter
	auditFsync   prometheus.Histogram
}

// NewMetrics creates every metric family and registers it with reg. It
// returns an error when a family is already registered there.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{reg: reg}
	m.newDecisionMetrics()
	m.newDependencyMetrics()

	collectors := []prometheus.Collector{
		m.decisions, m.decisionDuration, m.stepDuration, m.replayRejections, m.inFlight,
		m.limitRejections, m.redisDuration, m.redisErrors, m.jwksRefreshes, m.jwksLastSuccess,
		m.bundleInfo, m.bundleActivations, m.bundleLastSuccess, m.bundleLastFailure,
		m.auditRecords, m.auditFsync,
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) newDecisionMetrics() {
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "decisions_total",
		Help: "Decisions answered, by result (allow or deny), reason code and front door.",
	}, []string{"result", "reason", "front_door"})
	m.decisionDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "decision_duration_seconds",
		Help:    "Time from the start of a decision to its answer, audit included, by front door.",
		Buckets: latencyBuckets,
	}, []string{"front_door"})
	m.stepDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "decision_step_duration_seconds",
		Help: "Time spent in one pipeline step (authenticate, verify, replay, policy, audit), " +
			"by step and outcome (pass or fail).",
		Buckets: latencyBuckets,
	}, []string{"step", "outcome"})
	m.replayRejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "replay_rejections_total",
		Help: "Messages the replay step rejected, by reason code " +
			"(replay.nonce_reused, replay.sequence_regressed, state.unavailable).",
	}, []string{"reason"})
	m.inFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "decisions_in_flight",
		Help: "Decisions started and not yet answered, by front door.",
	}, []string{"front_door"})
	m.limitRejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "limit_rejections_total",
		Help: "Requests rejected by the request limits before a decision started, " +
			"by reason code (request.overloaded, request.too_large, request.timeout).",
	}, []string{"reason"})
}

func (m *Metrics) newDependencyMetrics() {
	m.redisDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "redis_duration_seconds",
		Help:    "Latency of Redis calls, by operation.",
		Buckets: latencyBuckets,
	}, []string{"op"})
	m.redisErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "redis_errors_total",
		Help: "Redis calls that failed, by operation.",
	}, []string{"op"})
	m.jwksRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "jwks_refreshes_total",
		Help: "JWKS fetches, by issuer and result (success or failure).",
	}, []string{"issuer", "result"})
	m.jwksLastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "jwks_last_success_timestamp_seconds",
		Help: "Unix time of the last successful JWKS fetch, by issuer.",
	}, []string{"issuer"})
	m.bundleInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "bundle_info",
		Help: "Always 1, labeled with the active bundle revision.",
	}, []string{"revision"})
	m.bundleActivations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "bundle_activations_total",
		Help: "Bundle activation attempts, by result (success or failure).",
	}, []string{"result"})
	m.bundleLastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "bundle_last_activation_success_timestamp_seconds",
		Help: "Unix time of the last successful bundle activation.",
	})
	m.bundleLastFailure = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "bundle_last_activation_failure_timestamp_seconds",
		Help: "Unix time of the last failed bundle activation, 0 when none failed.",
	})
	m.auditRecords = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "audit_records_total",
		Help: "Audit records made durable.",
	})
	m.auditFsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "audit_fsync_duration_seconds",
		Help:    "Latency of one audit write and fsync, which may cover a batch of records.",
		Buckets: latencyBuckets,
	})
}

// ObserveRedis records one Redis call: its latency and, when err is not
// nil, an error. op names the operation ("replay_check", "revocation_get",
// "audit_xadd", ...) and must come from code, never from request data.
func (m *Metrics) ObserveRedis(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.redisDuration.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.redisErrors.WithLabelValues(op).Inc()
	}
}

// JWKSRefresh records one JWKS fetch for issuer, failed when err is not
// nil. issuer must be a configured issuer name, never a value read from a
// token, so the label set stays bounded.
func (m *Metrics) JWKSRefresh(issuer string, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.jwksRefreshes.WithLabelValues(issuer, labelFailure).Inc()
		return
	}
	m.jwksRefreshes.WithLabelValues(issuer, labelSuccess).Inc()
	m.jwksLastSuccess.WithLabelValues(issuer).SetToCurrentTime()
}

// BundleActivated records one bundle activation attempt. On success,
// revision becomes the only revision label of pdp_bundle_info. On failure
// (err not nil) the revision label stays unchanged, because the PDP keeps
// serving the last good bundle.
func (m *Metrics) BundleActivated(revision string, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.bundleActivations.WithLabelValues(labelFailure).Inc()
		m.bundleLastFailure.SetToCurrentTime()
		return
	}
	m.bundleActivations.WithLabelValues(labelSuccess).Inc()
	m.bundleLastSuccess.SetToCurrentTime()

	// Reset and Set run under one lock, so two activations racing cannot
	// leave two revisions at 1.
	m.bundleMu.Lock()
	defer m.bundleMu.Unlock()
	m.bundleInfo.Reset()
	m.bundleInfo.WithLabelValues(revision).Set(1)
}

// AuditFsync records one write and fsync of the audit log that made
// records records durable and took d.
func (m *Metrics) AuditFsync(d time.Duration, records int) {
	if m == nil {
		return
	}
	m.auditFsync.Observe(d.Seconds())
	if records > 0 {
		m.auditRecords.Add(float64(records))
	}
}

// LimitRejected records a request that the request limits rejected before
// any decision started, with its reason code.
func (m *Metrics) LimitRejected(reason pdp.Reason) {
	if m == nil {
		return
	}
	m.limitRejections.WithLabelValues(reasonLabel(reason)).Inc()
}

// RegisterGaugeFunc registers a gauge named pdp_<name> whose value fn
// returns at each scrape, for values another package already keeps, such
// as the audit queue depth (RegisterAuditQueueDepth) or a limiter's count.
func (m *Metrics) RegisterGaugeFunc(name, help string, fn func() float64) error {
	if m == nil {
		return nil
	}
	return m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: name, Help: help,
	}, fn))
}

// RegisterCounterFunc registers a counter named pdp_<name> whose value fn
// returns at each scrape. fn must never return a smaller value than before.
func (m *Metrics) RegisterCounterFunc(name, help string, fn func() float64) error {
	if m == nil {
		return nil
	}
	return m.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: Namespace, Name: name, Help: help,
	}, fn))
}

// RegisterAuditQueueDepth registers pdp_audit_queue_depth, read from depth
// at each scrape: the records waiting for the next audit write.
func (m *Metrics) RegisterAuditQueueDepth(depth func() int) error {
	return m.RegisterGaugeFunc("audit_queue_depth",
		"Audit records waiting for the next write and fsync.",
		func() float64 { return float64(depth()) })
}

// recordDecision counts one finished decision.
func (m *Metrics) recordDecision(frontDoor string, d *pdp.Decision, elapsed time.Duration) {
	result := "deny"
	if d.Allow {
		result = "allow"
	}
	fd := frontDoorLabel(frontDoor)
	m.decisions.WithLabelValues(result, reasonLabel(d.Reason), fd).Inc()
	m.decisionDuration.WithLabelValues(fd).Observe(elapsed.Seconds())
}

// recordStep records one finished pipeline step.
func (m *Metrics) recordStep(step string, reason pdp.Reason, elapsed time.Duration) {
	if !knownSteps[step] {
		step = labelOther
	}
	outcome := "pass"
	if reason != "" {
		outcome = "fail"
	}
	m.stepDuration.WithLabelValues(step, outcome).Observe(elapsed.Seconds())
	if step == pdp.StepReplay && reason != "" {
		m.replayRejections.WithLabelValues(reasonLabel(reason)).Inc()
	}
}

func frontDoorLabel(frontDoor string) string {
	if knownFrontDoors[frontDoor] {
		return frontDoor
	}
	return labelOther
}

func reasonLabel(r pdp.Reason) string {
	if r.Known() {
		return string(r)
	}
	return labelOther
}
