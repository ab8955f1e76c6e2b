package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authgate/pdp/pdp"
)

// scrape returns the text exposition of reg, read through promhttp as
// Prometheus would.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read scrape: %v", err)
	}
	return string(body)
}

// sample returns the value of the first sample named name whose labels
// contain every one of labels (each written as key="value"), and whether
// one was found.
func sample(body, name string, labels ...string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		matched := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				matched = false
			}
		}
		if !matched {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, false
		}
		return v, true
	}
	return 0, false
}

func TestMetricsAfterMixedDecisions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	obs := NewObserver(m, nil)
	engine, _ := newTestEngine(t, obs)

	decide := func(req *pdp.Request) pdp.Decision {
		return engine.Decide(context.Background(), req)
	}
	if d := decide(httpRequest(pdp.FrontDoorDirect, "GET", "/items")); !d.Allow {
		t.Fatalf("direct GET /items: reason %q, want allow", d.Reason)
	}
	if d := decide(httpRequest(pdp.FrontDoorNGINX, "GET", "/deny/me")); d.Reason != pdp.ReasonPolicyDenied {
		t.Fatalf("nginx GET /deny/me: reason %q, want policy.denied", d.Reason)
	}
	if d := decide(callbackRequest("msg-1")); !d.Allow {
		t.Fatalf("first callback: reason %q, want allow", d.Reason)
	}
	if d := decide(callbackRequest("msg-1")); d.Reason != pdp.ReasonNonceReused {
		t.Fatalf("replayed callback: reason %q, want replay.nonce_reused", d.Reason)
	}

	// One decision stays open while the registry is scraped.
	_, endOpen := obs.StartDecision(context.Background(), pdp.FrontDoorEnvoyHTTP)
	defer endOpen()

	m.ObserveRedis("replay_check", 2*time.Millisecond, nil)
	m.ObserveRedis("replay_check", time.Millisecond, errors.New("connection refused"))
	m.JWKSRefresh("idp", nil)
	m.JWKSRefresh("idp", errors.New("fetch failed"))
	m.BundleActivated("rev-1", nil)
	m.BundleActivated("rev-2", errors.New("compile failed"))
	m.AuditFsync(3*time.Millisecond, 4)
	m.LimitRejected(pdp.ReasonOverloaded)
	if err := m.RegisterAuditQueueDepth(func() int { return 7 }); err != nil {
		t.Fatalf("RegisterAuditQueueDepth: %v", err)
	}

	body := scrape(t, reg)
	cases := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"direct allow", "pdp_decisions_total",
			[]string{`front_door="direct"`, `reason="policy.allowed"`, `result="allow"`}, 1},
		{"nginx policy deny", "pdp_decisions_total",
			[]string{`front_door="nginx"`, `reason="policy.denied"`, `result="deny"`}, 1},
		{"envoy replay deny", "pdp_decisions_total",
			[]string{`front_door="envoy_grpc"`, `reason="replay.nonce_reused"`}, 1},
		{"latency per front door", "pdp_decision_duration_seconds_count",
			[]string{`front_door="envoy_grpc"`}, 2},
		{"authenticate step", "pdp_decision_step_duration_seconds_count",
			[]string{`step="authenticate"`, `outcome="pass"`}, 4},
		{"verify step", "pdp_decision_step_duration_seconds_count",
			[]string{`step="verify"`, `outcome="pass"`}, 4},
		{"replay step failed", "pdp_decision_step_duration_seconds_count",
			[]string{`step="replay"`, `outcome="fail"`}, 1},
		{"policy step", "pdp_decision_step_duration_seconds_count",
			[]string{`step="policy"`}, 3},
		{"audit step", "pdp_decision_step_duration_seconds_count",
			[]string{`step="audit"`}, 4},
		{"replay rejection", "pdp_replay_rejections_total",
			[]string{`reason="replay.nonce_reused"`}, 1},
		{"open decision in flight", "pdp_decisions_in_flight",
			[]string{`front_door="envoy_http"`}, 1},
		{"finished decisions leave flight", "pdp_decisions_in_flight",
			[]string{`front_door="direct"`}, 0},
		{"limit rejection", "pdp_limit_rejections_total",
			[]string{`reason="request.overloaded"`}, 1},
		{"redis latency", "pdp_redis_duration_seconds_count", []string{`op="replay_check"`}, 2},
		{"redis errors", "pdp_redis_errors_total", []string{`op="replay_check"`}, 1},
		{"jwks success", "pdp_jwks_refreshes_total",
			[]string{`issuer="idp"`, `result="success"`}, 1},
		{"jwks failure", "pdp_jwks_refreshes_total",
			[]string{`issuer="idp"`, `result="failure"`}, 1},
		{"bundle revision kept after failure", "pdp_bundle_info", []string{`revision="rev-1"`}, 1},
		{"bundle failures", "pdp_bundle_activations_total", []string{`result="failure"`}, 1},
		{"audit records", "pdp_audit_records_total", nil, 4},
		{"audit fsync", "pdp_audit_fsync_duration_seconds_count", nil, 1},
		{"audit queue depth", "pdp_audit_queue_depth", nil, 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := sample(body, tc.metric, tc.labels...)
			if !ok {
				t.Fatalf("no sample %s%v in scrape:\n%s", tc.metric, tc.labels, body)
			}
			if got != tc.want {
				t.Errorf("%s%v = %v, want %v", tc.metric, tc.labels, got, tc.want)
			}
		})
	}

	for _, gauge := range []string{
		"pdp_jwks_last_success_timestamp_seconds",
		"pdp_bundle_last_activation_success_timestamp_seconds",
		"pdp_bundle_last_activation_failure_timestamp_seconds",
	} {
		if got, ok := sample(body, gauge); !ok || got < float64(time.Now().Add(-time.Hour).Unix()) {
			t.Errorf("%s = %v (found %v), want a recent Unix time", gauge, got, ok)
		}
	}
	if _, ok := sample(body, "pdp_bundle_info", `revision="rev-2"`); ok {
		t.Errorf("pdp_bundle_info has the failed revision rev-2")
	}
}

func TestMetricsBoundLabelValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	m.recordDecision("made-up-door", &pdp.Decision{Reason: "made.up"}, time.Millisecond)
	m.recordStep("made-up-step", "made.up", time.Millisecond)

	body := scrape(t, reg)
	if _, ok := sample(body, "pdp_decisions_total", `front_door="other"`, `reason="other"`); !ok {
		t.Errorf("unknown front door and reason not mapped to other:\n%s", body)
	}
	if _, ok := sample(body, "pdp_decision_step_duration_seconds_count", `step="other"`); !ok {
		t.Errorf("unknown step not mapped to other:\n%s", body)
	}
	if strings.Contains(body, "made-up") || strings.Contains(body, "made.up") {
		t.Errorf("scrape contains a caller-chosen label value:\n%s", body)
	}
}

func TestMetricsNilReceiverIsSafe(t *testing.T) {
	var m *Metrics
	m.ObserveRedis("op", time.Millisecond, errors.New("x"))
	m.JWKSRefresh("idp", nil)
	m.BundleActivated("rev", nil)
	m.AuditFsync(time.Millisecond, 1)
	m.LimitRejected(pdp.ReasonOverloaded)
	if err := m.RegisterAuditQueueDepth(func() int { return 1 }); err != nil {
		t.Errorf("RegisterAuditQueueDepth on nil Metrics: %v", err)
	}
}

func TestNewMetricsTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatalf("first NewMetrics: %v", err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("second NewMetrics on the same registry: err = nil, want a duplicate error")
	}
}
