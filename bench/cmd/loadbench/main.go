// Command loadbench measures the PDP against OPA's own server on this
// machine and writes a Markdown report. It starts each server on a free
// loopback port, drives the same workload through both (vegeta for HTTP,
// ghz for gRPC), samples the server's CPU time and peak RSS from /proc and
// compares the two per scenario. Every request goes to 127.0.0.1, and every
// run is bounded by -duration.
//
// Run it through `make bench`, which builds the binaries first:
//
//	go run ./bench/cmd/loadbench -pdp bin/pdp -opa bin/opa -out bench/RESULTS.md
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options are the command-line settings of one harness run.
type options struct {
	pdpBin    string
	opaBin    string
	ghzBin    string
	redisBin  string
	out       string
	micro     string
	workDir   string
	duration  time.Duration
	warmup    time.Duration
	scenarios string
	maxLoad   float64
	waitQuiet time.Duration
	command   string
	revision  string
	keepWork  bool
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	flag.StringVar(&o.pdpBin, "pdp", "bin/pdp", "PDP binary `path`")
	flag.StringVar(&o.opaBin, "opa", "bin/opa", "OPA binary `path`, built from the OPA module in go.mod")
	flag.StringVar(&o.ghzBin, "ghz", "bin/ghz", "ghz binary `path` for the gRPC scenario; when missing, "+
		"the built-in gRPC load loop is used")
	flag.StringVar(&o.redisBin, "redis-server", "redis-server", "redis-server binary `path` for the backchannel scenario")
	flag.StringVar(&o.out, "out", "bench/RESULTS.md", "Markdown report `file`")
	flag.StringVar(&o.micro, "micro", "", "`file` with `go test -bench` output to summarize in the report")
	flag.StringVar(&o.workDir, "workdir", "", "`directory` for configs, audit files and logs (default: a new temporary directory)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured run")
	flag.IntVar(&saturationWorkers, "concurrency", saturationWorkers, "concurrent requests in a saturation run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each server's first run")
	flag.StringVar(&o.scenarios, "scenarios", "all", "comma-separated scenario ids to run (policy, direct, jwt, webhook, grpc, reload) or all")
	flag.Float64Var(&o.maxLoad, "max-load", 0.8, "wait until the 1-minute load average is below this before measuring")
	flag.DurationVar(&o.waitQuiet, "wait-quiet", 0, "longest wait for -max-load; 0 measures at once")
	flag.StringVar(&o.command, "command", "", "command line to print in the report (default: this command's own)")
	flag.StringVar(&o.revision, "revision", "", "source revision of the PDP binary to print in the report "+
		"(default: git rev-parse HEAD of the working directory)")
	flag.BoolVar(&o.keepWork, "keep", false, "keep the work directory")
	flag.StringVar(&profileDir, "profile", "", "`directory` for a CPU profile of every PDP run, taken through the admin listener")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.SetDefault(log)
	if o.command == "" {
		o.command = strings.Join(os.Args, " ")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := prepare(&o); err != nil {
		fmt.Fprintf(os.Stderr, "loadbench: %v\n", err)
		return 2
	}
	if !o.keepWork {
		defer os.RemoveAll(o.workDir)
	}

	h := &harness{opts: o, log: log}
	report, err := h.runAll(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadbench: %v\n", err)
		return 1
	}
	if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "loadbench: write report: %v\n", err)
		return 1
	}
	log.Info("report written", "file", o.out)
	return 0
}

// prepare checks the binaries and makes every path absolute, because the
// servers run with the work directory as their working directory.
func prepare(o *options) error {
	for _, p := range []*string{&o.pdpBin, &o.opaBin} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("binary not found: %w (build it first, or run `make bench`)", err)
		}
		*p = abs
	}
	if abs, err := filepath.Abs(o.ghzBin); err == nil {
		o.ghzBin = abs
	}
	if _, err := os.Stat(o.ghzBin); err != nil {
		o.ghzBin = ""
	}
	if profileDir != "" {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			return err
		}
	}
	if o.workDir == "" {
		dir, err := os.MkdirTemp("", "loadbench-")
		if err != nil {
			return err
		}
		o.workDir = dir
	}
	if saturationWorkers < 1 {
		return fmt.Errorf("-concurrency %d must be at least 1", saturationWorkers)
	}
	if o.duration < time.Second {
		return fmt.Errorf("-duration %s is below the minimum of 1s", o.duration)
	}
	return nil
}
