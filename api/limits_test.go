package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authgate/pdp/pdp"
)

// limitsServer serves POST /v1/decision behind the limits on loopback.
// The handler blocks until release is closed when the request carries
// x-block, and counts the requests inside it at once.
type limitsServer struct {
	url     string
	limits  *Limits
	release chan struct{}
	entered chan struct{}
	inside  atomic.Int64
	peak    atomic.Int64
	rejects sync.Map
}

func startLimitsServer(t *testing.T, cfg LimitsConfig) *limitsServer {
	t.Helper()
	s := &limitsServer{release: make(chan struct{}), entered: make(chan struct{}, 1024)}
	s.limits = NewLimits(cfg, LimitsOptions{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnReject: func(r pdp.Reason) {
			n, _ := s.rejects.LoadOrStore(r, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		},
	})

	e := echo.New()
	e.Use(s.limits.Middleware())
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	e.POST("/v1/decision", func(c echo.Context) error {
		now := s.inside.Add(1)
		defer s.inside.Add(-1)
		for {
			peak := s.peak.Load()
			if now <= peak || s.peak.CompareAndSwap(peak, now) {
				break
			}
		}
		if c.Request().Header.Get("x-block") != "" {
			s.entered <- struct{}{}
			<-s.release
		}
		if c.Request().Header.Get("x-wait-deadline") != "" {
			<-c.Request().Context().Done()
			return c.Request().Context().Err()
		}
		return c.JSON(http.StatusOK, map[string]bool{"allow": true})
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *limitsServer) rejected(r pdp.Reason) int64 {
	n, ok := s.rejects.Load(r)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// limitsPost sends one request and returns the response, whose body it
// has read, and the decoded error body of a non-200 response.
func limitsPost(client *http.Client, url string, header http.Header) (*http.Response, errorBody, error) {
	var body errorBody
	req, err := http.NewRequest(http.MethodPost, url+"/v1/decision", strings.NewReader("{}"))
	if err != nil {
		return nil, body, err
	}
	for name, values := range header {
		req.Header[name] = values
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, body, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, body, err
	}
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(raw, &body); err != nil {
			return nil, body, fmt.Errorf("status %d body %q is not JSON: %w", resp.StatusCode, raw, err)
		}
	}
	return resp, body, nil
}

// mustPost is limitsPost for the test goroutine.
func mustPost(t *testing.T, url string, header http.Header) (*http.Response, errorBody) {
	t.Helper()
	resp, body, err := limitsPost(http.DefaultClient, url, header)
	if err != nil {
		t.Fatalf("POST /v1/decision: %v", err)
	}
	return resp, body
}

func TestLimitsShedOverload(t *testing.T) {
	const (
		maxConcurrent = 4
		workers       = 16
		perWorker     = 50
	)
	s := startLimitsServer(t, LimitsConfig{MaxConcurrent: maxConcurrent, RetryAfter: 1500 * time.Millisecond})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()

	// Fill every slot with a request that blocks inside the handler.
	var held sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < maxConcurrent; i++ {
		held.Add(1)
		go func() {
			defer held.Done()
			if _, _, err := limitsPost(client, s.url, http.Header{"X-Block": {"1"}}); err != nil {
				failed.Add(1)
			}
		}()
	}
	for i := 0; i < maxConcurrent; i++ {
		<-s.entered
	}

	var memBefore runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&memBefore)
	goroutinesBefore := runtime.NumGoroutine()

	// Every further request is shed. They all return while the slots are
	// still held, which shows that none of them waited in a queue.
	var shed, other atomic.Int64
	var wrongRetryAfter, wrongReason atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				resp, body, err := limitsPost(client, s.url, nil)
				if err != nil {
					failed.Add(1)
					continue
				}
				if resp.StatusCode != http.StatusTooManyRequests {
					other.Add(1)
					continue
				}
				shed.Add(1)
				if resp.Header.Get("Retry-After") != "2" {
					wrongRetryAfter.Add(1)
				}
				if body.Reason != pdp.ReasonOverloaded || body.Allow {
					wrongReason.Add(1)
				}
			}
		}()
	}
	wg.Wait()

	goroutinesAfter := runtime.NumGoroutine()
	var memAfter runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&memAfter)

	close(s.release)
	held.Wait()

	if got := failed.Load(); got != 0 {
		t.Errorf("%d requests failed without an HTTP response", got)
	}
	if got := shed.Load(); got != workers*perWorker {
		t.Errorf("shed %d requests, want all %d (%d got another status)",
			got, workers*perWorker, other.Load())
	}
	if got := wrongRetryAfter.Load(); got != 0 {
		t.Errorf("%d responses lack Retry-After: 2 (1.5s rounded up)", got)
	}
	if got := wrongReason.Load(); got != 0 {
		t.Errorf("%d responses lack reason request.overloaded", got)
	}
	if got := s.peak.Load(); got > maxConcurrent {
		t.Errorf("peak requests inside the handler = %d, want at most %d", got, maxConcurrent)
	}
	if got := s.rejected(pdp.ReasonOverloaded); got != workers*perWorker {
		t.Errorf("OnReject(request.overloaded) called %d times, want %d", got, workers*perWorker)
	}
	if got := s.limits.Limiter().InFlight(); got != 0 {
		t.Errorf("InFlight() after the run = %d, want 0", got)
	}
	// Each worker keeps one client connection, with a goroutine or two on
	// each side; anything beyond that would be a request parked somewhere.
	if grown := goroutinesAfter - goroutinesBefore; grown > 4*workers {
		t.Errorf("goroutines grew by %d while shedding %d requests, want at most %d",
			grown, workers*perWorker, 4*workers)
	}
	const heapSlack = 16 << 20
	if grown := int64(memAfter.HeapAlloc) - int64(memBefore.HeapAlloc); grown > heapSlack {
		t.Errorf("live heap grew by %d bytes while shedding, want at most %d", grown, heapSlack)
	}
}

func TestLimitsProbesSkipOverload(t *testing.T) {
	s := startLimitsServer(t, LimitsConfig{MaxConcurrent: 1})
	go func() { _, _, _ = limitsPost(http.DefaultClient, s.url, http.Header{"X-Block": {"1"}}) }()
	<-s.entered
	defer close(s.release)

	resp, err := http.Get(s.url + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz while overloaded = %d, want 200", resp.StatusCode)
	}
}

func TestLimitsHeaderLimits(t *testing.T) {
	cases := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"within limits", http.Header{"X-A": {"1"}}, http.StatusOK},
		{"too many fields", manyHeaders(20), http.StatusRequestHeaderFieldsTooLarge},
		{"too many bytes", http.Header{"X-Big": {strings.Repeat("a", 600)}},
			http.StatusRequestHeaderFieldsTooLarge},
	}
	s := startLimitsServer(t, LimitsConfig{MaxHeaderCount: 10, MaxHeaderBytes: 512})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := mustPost(t, s.url, tc.header)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want != http.StatusOK && body.Reason != pdp.ReasonRequestTooLarge {
				t.Errorf("reason = %q, want request.too_large", body.Reason)
			}
		})
	}
}

func manyHeaders(n int) http.Header {
	h := http.Header{}
	for i := 0; i < n; i++ {
		h.Add("X-Field", "v")
	}
	return h
}

func TestLimitsDecisionTimeout(t *testing.T) {
	s := startLimitsServer(t, LimitsConfig{DecisionTimeout: 20 * time.Millisecond})
	resp, body := mustPost(t, s.url, http.Header{"X-Wait-Deadline": {"1"}})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", resp.StatusCode)
	}
	if body.Reason != pdp.ReasonTimeout {
		t.Errorf("reason = %q, want request.timeout", body.Reason)
	}
	if got := s.rejected(pdp.ReasonTimeout); got != 1 {
		t.Errorf("OnReject(request.timeout) called %d times, want 1", got)
	}
}

func TestLimitsConfigDefaultsAndValidate(t *testing.T) {
	cfg := LimitsConfig{}.WithDefaults()
	if cfg.MaxConcurrent != DefaultMaxConcurrent || cfg.DecisionTimeout != DefaultDecisionTimeout ||
		cfg.MaxHeaderCount != DefaultMaxHeaderCount || cfg.MaxHeaderBytes != DefaultMaxHeaderBytes ||
		cfg.RetryAfter != DefaultRetryAfter {
		t.Errorf("WithDefaults() = %+v, want every default", cfg)
	}
	bad := LimitsConfig{MaxConcurrent: -1, RetryAfter: -1, MaxHeaderCount: -1, MaxHeaderBytes: -1,
		DecisionTimeout: -1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate() with negative limits = nil, want errors")
	}
	for _, key := range []string{"max_concurrent", "retry_after", "max_header_count",
		"max_header_bytes", "decision_timeout"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() error %q does not name %s", err, key)
		}
	}
}

func TestLimitsCheckHeaders(t *testing.T) {
	l := NewLimits(LimitsConfig{MaxHeaderCount: 2, MaxHeaderBytes: 16}, LimitsOptions{})
	if err := l.CheckHeaders(map[string]string{"a": "1"}); err != nil {
		t.Errorf("CheckHeaders(small) = %v, want nil", err)
	}
	if err := l.CheckHeaders(map[string]string{"a": "1", "b": "2", "c": "3"}); pdp.ReasonOf(err, "") !=
		pdp.ReasonRequestTooLarge {
		t.Errorf("CheckHeaders(3 fields) = %v, want request.too_large", err)
	}
	if err := l.CheckHeaders(map[string]string{"a": strings.Repeat("x", 16)}); pdp.ReasonOf(err, "") !=
		pdp.ReasonRequestTooLarge {
		t.Errorf("CheckHeaders(17 bytes) = %v, want request.too_large", err)
	}
}

func TestLimitsGRPCInterceptor(t *testing.T) {
	l := NewLimits(LimitsConfig{MaxConcurrent: 1, MaxHeaderCount: 4},
		LimitsOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	check := &grpc.UnaryServerInfo{FullMethod: "/envoy.service.auth.v3.Authorization/Check"}
	health := &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}
	ok := func(ctx context.Context, _ any) (any, error) {
		if _, has := ctx.Deadline(); !has {
			return nil, status.Error(codes.Internal, "no deadline")
		}
		return "decided", nil
	}
	var rejectedWith pdp.Reason
	denial := func(_ context.Context, _ *grpc.UnaryServerInfo, r pdp.Reason) (any, error) {
		rejectedWith = r
		return "denial", nil
	}
	withDenial := l.UnaryServerInterceptor(denial)
	plain := l.UnaryServerInterceptor(nil)
	ctx := context.Background()

	if resp, err := withDenial(ctx, nil, check, ok); resp != "decided" || err != nil {
		t.Errorf("under the limit: %v, %v, want decided with a deadline", resp, err)
	}

	if !l.Limiter().TryAcquire() {
		t.Fatal("TryAcquire on an idle limiter = false")
	}
	resp, err := withDenial(ctx, nil, check, ok)
	if resp != "denial" || err != nil || rejectedWith != pdp.ReasonOverloaded {
		t.Errorf("over the limit with reject: %v, %v, reason %q, want the denial and request.overloaded",
			resp, err, rejectedWith)
	}
	if _, err := plain(ctx, nil, check, ok); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("over the limit without reject: err = %v, want RESOURCE_EXHAUSTED", err)
	}
	served := func(context.Context, any) (any, error) { return "served", nil }
	if resp, err := plain(ctx, nil, health, served); resp != "served" || err != nil {
		t.Errorf("health check over the limit: %v, %v, want it served", resp, err)
	}
	l.Limiter().Release()

	md := metadata.Pairs("a", "1", "b", "2", "c", "3", "d", "4", "e", "5")
	big := metadata.NewIncomingContext(ctx, md)
	if _, err := withDenial(big, nil, check, ok); err != nil || rejectedWith != pdp.ReasonRequestTooLarge {
		t.Errorf("5 metadata fields: err %v, reason %q, want request.too_large", err, rejectedWith)
	}
}

func TestMetricsHandlerServesRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "pdp_test_total", Help: "Test counter."})
	reg.MustRegister(c)
	c.Add(3)

	srv := httptest.NewServer(MetricsHandler(reg, nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	if !strings.Contains(string(body), "pdp_test_total 3") {
		t.Errorf("scrape lacks pdp_test_total 3:\n%s", body)
	}
}
