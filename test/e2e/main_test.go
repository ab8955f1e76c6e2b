// Package e2e runs the built pdp binary as a user would: it starts
// `pdp serve` on free loopback ports with real bundles, requests decisions
// over HTTP and checks the audit chain with `pdp audit verify`.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pdpBinary is the pdp command built once for the package's tests.
var pdpBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pdp-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pdpBinary = filepath.Join(dir, "pdp")
	build := exec.Command("go", "build", "-o", pdpBinary, "../../cmd/pdp")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build pdp: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running `pdp serve` process.
type server struct {
	t        *testing.T
	cmd      *exec.Cmd
	base     string
	grpcAddr string
	auditDir string
	stderr   *syncBuffer
	// exited is closed when the process has exited; exitErr is then set.
	exited  chan struct{}
	exitErr error
}

// syncBuffer collects process output for assertions while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer runs `pdp serve` with the given config file ("" for none)
// and extra PDP_* variables, on free ports and a private audit directory.
func startServer(t *testing.T, configFile string, env ...string) *server {
	t.Helper()
	s := &server{t: t, auditDir: filepath.Join(t.TempDir(), "audit"), stderr: &syncBuffer{},
		exited: make(chan struct{})}
	httpAddr := freeAddr(t)
	s.base = "http://" + httpAddr

	args := []string{"serve"}
	if configFile != "" {
		args = append(args, "--config", configFile)
	}
	s.cmd = exec.Command(pdpBinary, args...)
	s.grpcAddr = freeAddr(t)
	s.cmd.Env = append(os.Environ(), "PDP_HTTP_ADDR="+httpAddr, "PDP_GRPC_ADDR="+s.grpcAddr,
		"PDP_AUDIT_DIR="+s.auditDir, "PDP_INSTANCE=e2e", "PDP_LOG_FORMAT=json", "PDP_LOG_LEVEL=debug")
	s.cmd.Env = append(s.cmd.Env, env...)
	s.cmd.Stderr = s.stderr
	s.cmd.Stdout = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start pdp: %v", err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.kill)
	s.waitReady()
	return s
}

func (s *server) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			s.t.Fatalf("pdp exited before ready: %v\n%s", s.exitErr, s.stderr)
		default:
		}
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("pdp not ready within 30s\n%s", s.stderr)
}

func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// stop sends SIGTERM and returns the exit error.
func (s *server) stop() error {
	s.t.Helper()
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		s.t.Fatal(err)
	}
	select {
	case <-s.exited:
		return s.exitErr
	case <-time.After(20 * time.Second):
		s.t.Fatalf("pdp did not stop within 20s after SIGTERM")
		return nil
	}
}

// decision is the subset of the decision response the tests read.
type decision struct {
	ID             string `json:"decision_id"`
	Allow          bool   `json:"allow"`
	Reason         string `json:"reason"`
	HTTPStatus     int    `json:"http_status"`
	BundleRevision string `json:"bundle_revision"`
}

// decide posts body to /v1/decision and returns the status and decision.
func (s *server) decide(body string) (int, decision) {
	s.t.Helper()
	resp, err := http.Post(s.base+"/v1/decision", "application/json", strings.NewReader(body))
	if err != nil {
		s.t.Fatalf("POST /v1/decision: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var d decision
	if err := json.Unmarshal(raw, &d); err != nil {
		s.t.Fatalf("decision answer is not JSON: %v: %s", err, raw)
	}
	return resp.StatusCode, d
}

// runPDP runs the pdp binary with args and returns its combined output.
// metric returns the value of an unlabelled series from GET /metrics, or
// -1 when the series is missing.
func (s *server) metric(name string) float64 {
	s.t.Helper()
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		s.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("read /metrics: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if value, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				s.t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

func runPDP(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, pdpBinary, args...).CombinedOutput()
	return string(out), err
}
