package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

// grpcFixedRateWorkers is ghz's concurrency in a fixed-rate run.
const grpcFixedRateWorkers = 128

// checkMethod is Envoy's ext_authz v3 method, as ghz names it.
const checkMethod = "envoy.service.auth.v3.Authorization.Check"

// ghzReport is the part of ghz's JSON report (-O json) the harness reads.
type ghzReport struct {
	Total   time.Duration  `json:"total"`
	Count   uint64         `json:"count"`
	Errors  map[string]int `json:"errorDistribution"`
	Details []struct {
		Timestamp time.Time     `json:"timestamp"`
		Latency   time.Duration `json:"latency"`
		Error     string        `json:"error"`
		Status    string        `json:"status"`
	} `json:"details"`
}

// runGHZ drives Check calls with the CheckRequest req against addr for d,
// at rate calls per second or, with rate 0, with saturationWorkers
// concurrent calls. ghz reads the service description by server
// reflection. ghz judges a call only by its gRPC status, so whether the
// decision was an allow is checked by probeCheck before and after.
func runGHZ(ctx context.Context, ghz, dir string, srv *server, req *authv3.CheckRequest, rate int, d time.Duration) (*runResult, error) {
	data, err := protojson.Marshal(req)
	if err != nil {
		return nil, err
	}
	dataFile := fmt.Sprintf("%s/check-request.json", dir)
	if err := os.WriteFile(dataFile, data, 0o600); err != nil {
		return nil, err
	}
	label := fmt.Sprintf("%d/s", rate)
	// ghz paces each of its workers, so a fixed rate needs more workers
	// than rate × latency, or the rate is not reached.
	concurrency := grpcFixedRateWorkers
	if rate == 0 {
		label = "saturation"
		concurrency = saturationWorkers
	}
	args := []string{
		"--insecure", "--call", checkMethod, "--data-file", dataFile,
		"-z", d.String(), "-c", strconv.Itoa(concurrency), "--connections", "2",
		"-r", strconv.Itoa(rate), "--duration-stop", "wait", "-O", "json", "--timeout", requestTimeout.String(),
		srv.grpcAddr,
	}

	metricsBefore := scrapeServerMetrics(ctx, srv)
	meter, err := startUsage(srv.pid())
	if err != nil {
		return nil, err
	}
	profileDone := startProfile(ctx, srv, label, d)
	defer profileDone()
	cmd := exec.CommandContext(ctx, ghz, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	u, err := meter.stop()
	if err != nil {
		return nil, err
	}
	if runErr != nil && stdout.Len() == 0 {
		return nil, fmt.Errorf("ghz: %w: %s", runErr, bytes.TrimSpace(stderr.Bytes()))
	}

	var rep ghzReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("read ghz report: %w", err)
	}
	res := &runResult{
		server: srv.name, label: label, rate: rate, workers: concurrency, tool: "ghz",
		elapsed: rep.Total, usage: u, samples: make([]sample, 0, len(rep.Details)),
		metrics: scrapeServerMetrics(ctx, srv).since(metricsBefore),
	}
	if cmd.ProcessState != nil {
		res.clientCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	for _, det := range rep.Details {
		s := sample{start: det.Timestamp, latency: det.Latency}
		if det.Error != "" || det.Status != "OK" {
			res.addError(&s, "grpc: "+det.Status+" "+det.Error)
		}
		res.samples = append(res.samples, s)
	}
	res.finish()
	return res, nil
}

// probeCheck sends one Check and returns nil when it is allowed.
func probeCheck(ctx context.Context, addr string, req *authv3.CheckRequest) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req)
	if err != nil {
		return fmt.Errorf("Check failed: %w", err)
	}
	if code := codes.Code(resp.GetStatus().GetCode()); code != codes.OK {
		reason := ""
		if denied := resp.GetDeniedResponse(); denied != nil {
			for _, h := range denied.GetHeaders() {
				if h.GetHeader().GetKey() == "x-pdp-reason" {
					reason = h.GetHeader().GetValue()
				}
			}
		}
		return fmt.Errorf("Check denied with status %s, reason %q", code, reason)
	}
	return nil
}
