package main

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// renderReport returns the Markdown report of one harness run.
func renderReport(m machineFacts, o options, results []*scenarioResult) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("# Performance results\n\n")
	w("Written by `bench/cmd/loadbench`. Regenerate it with `make bench`. This file came from:\n\n")
	w("```\n%s\n```\n\n", o.command)
	if invocation := invocation(); invocation != o.command {
		w("which ran:\n\n```\n%s\n```\n\n", invocation)
	}
	writeMachine(&b, m, o)
	writeMethod(&b)
	writeTargets(&b, results)
	for _, res := range results {
		writeScenario(&b, res)
	}
	if o.micro != "" {
		writeMicro(&b, o.micro)
	}
	return b.String()
}

// invocation returns this command's own command line, naming a binary
// that `go run` built in its temporary directory by its package.
func invocation() string {
	args := slices.Clone(os.Args)
	if strings.Contains(args[0], "go-build") {
		args[0] = "go run ./bench/cmd/loadbench"
	}
	return strings.Join(args, " ")
}

func writeMachine(b *strings.Builder, m machineFacts, o options) {
	fmt.Fprintf(b, "## Machine\n\n")
	fmt.Fprintf(b, "| | |\n| --- | --- |\n")
	fmt.Fprintf(b, "| date (UTC) | %s |\n", m.date.Format("2006-01-02 15:04"))
	fmt.Fprintf(b, "| cores | %d (servers and load generator share them) |\n", m.cores)
	fmt.Fprintf(b, "| CPU | %s |\n", m.cpuModel)
	fmt.Fprintf(b, "| memory | %s |\n", m.memTotal)
	fmt.Fprintf(b, "| kernel | %s |\n", m.kernel)
	fmt.Fprintf(b, "| Go | %s |\n", m.goVersion)
	fmt.Fprintf(b, "| OPA (baseline) | %s, `opa run --server`, built from the OPA module in go.mod |\n", m.opaVersion)
	fmt.Fprintf(b, "| PDP | version %s, commit %s |\n", m.pdpVersion, m.gitCommit)
	fmt.Fprintf(b, "| load average (1, 5, 15 min) at start | %.2f, %.2f, %.2f |\n",
		m.loadBefore[0], m.loadBefore[1], m.loadBefore[2])
	fmt.Fprintf(b, "| load average at end | %.2f, %.2f, %.2f |\n", m.loadAfter[0], m.loadAfter[1], m.loadAfter[2])
	fmt.Fprintf(b, "| run length | %s per measured run, %s warm-up per server; whole harness %s |\n\n",
		o.duration, o.warmup, m.elapsed.Round(time.Second))
	if m.loadBefore[0] >= o.maxLoad {
		fmt.Fprintf(b, "NOTE: the 1-minute load average was %.2f at the start, above the %.2f wanted "+
			"for a quiet machine: other work shared the cores, so absolute numbers are low and noisy. "+
			"Ratios between servers measured back to back are more robust than the absolute figures.\n\n",
			m.loadBefore[0], o.maxLoad)
	}
}

func writeMethod(b *strings.Builder) {
	b.WriteString(`## Method

- Every server listens on a free port on 127.0.0.1; the harness sends no traffic elsewhere. OPA runs with
  ` + "`--skip-version-check --log-level error`" + `, the PDP with log level warn, so neither logs per request.
- HTTP load: vegeta v12.13.0 as a library, HTTP/1.1 keep-alive. "saturation" is ` + strconv.Itoa(saturationWorkers) + ` concurrent
  requests with no rate limit; "N/s" is an open-loop constant rate (vegeta adds workers when all are busy).
- gRPC load: ghz v0.93.0 (` + "`go install github.com/bojand/ghz/cmd/ghz@v0.93.0`" + `), per-call details from its JSON
  report. At a fixed rate ghz paces ` + strconv.Itoa(grpcFixedRateWorkers) + ` workers, each waiting for its answer, so a
  slow answer delays later calls (closed loop) and its latency understates queueing.
- Latency is client-observed, from the moment a request is sent until its whole answer is read, so it
  includes the load generator, loopback and HTTP parsing. It is an upper bound of the server's own time.
  Percentiles are exact nearest-rank values over every request of the run.
- "achieved/s" counts only correct answers: a 200 whose body is an allow.
- Server CPU is utime + stime of the server process from /proc/PID/stat over the run; CPU/decision divides
  it by the requests sent. Peak RSS is VmHWM from /proc/PID/status, reset through /proc/PID/clear_refs
  before each run, so it is the peak of that run. Client CPU is the load generator's own CPU time.
- "PDP's own time" comes from the PDP's pdp_decision_duration_seconds histogram on GET /metrics, read
  before and after the run (start of a decision to its answer, audit included, HTTP excluded). Its
  buckets bound the p99 from above. "n/a" means the built PDP does not serve the metric.
- Ratios are PDP / OPA from the same harness run, measured one after the other on the same machine.

`)
}

func writeTargets(b *strings.Builder, results []*scenarioResult) {
	b.WriteString("## Targets\n\n| scenario | target | measured | status |\n| --- | --- | --- | --- |\n")
	for _, res := range results {
		if res.skipped != "" {
			fmt.Fprintf(b, "| %s | all | %s | not measured |\n", res.id, escapeCell(res.skipped))
			continue
		}
		for _, t := range res.targets {
			fmt.Fprintf(b, "| %s | %s | %s | **%s** |\n", res.id, escapeCell(t.target), escapeCell(t.measured), t.status)
		}
	}
	b.WriteString("\n")
}

func writeScenario(b *strings.Builder, res *scenarioResult) {
	fmt.Fprintf(b, "## %s\n\n", res.title)
	if res.skipped != "" {
		fmt.Fprintf(b, "Skipped. %s\n\n", res.skipped)
		return
	}
	for _, s := range res.setup {
		fmt.Fprintf(b, "- %s\n", s)
	}
	b.WriteString("\n| server | load | achieved/s | requests | failed | p50 | p90 | p99 | p99.9 | max | " +
		"server CPU | CPU/decision | peak RSS | client CPU | PDP's own time |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range res.runs {
		fmt.Fprintf(b, "| %s | %s | %.0f | %d | %d | %s | %s | %s | %s | %s | %.2f s | %s | %s | %.2f s | %s |\n",
			r.server, r.label, r.throughput(), r.requests(), r.failed,
			fmtDur(r.percentile(0.50)), fmtDur(r.percentile(0.90)), fmtDur(r.percentile(0.99)),
			fmtDur(r.percentile(0.999)), fmtDur(r.percentile(1)),
			r.usage.cpu.Seconds(), fmtDur(r.cpuPerDecision()), fmtBytes(r.usage.peakRSS), r.clientCPU.Seconds(),
			r.ownTime().describe())
	}
	b.WriteString("\n")
	writeRatios(b, res)
	for _, r := range res.runs {
		if steps := r.metrics.stepMeans(); steps != "" {
			fmt.Fprintf(b, "- Mean time per pipeline step, %s at %s: %s\n", r.server, r.label, steps)
		}
	}
	for _, r := range res.runs {
		if len(r.errors) == 0 {
			continue
		}
		keys := make([]string, 0, len(r.errors))
		for k := range r.errors {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return r.errors[keys[i]] > r.errors[keys[j]] })
		if len(keys) > 5 {
			keys = keys[:5]
		}
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%d × %s", r.errors[k], k)
		}
		fmt.Fprintf(b, "- Failures of %s at %s: %s\n", r.server, r.label, strings.Join(parts, "; "))
	}
	for _, n := range res.notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
	fmt.Fprintf(b, "\n")
}

// writeRatios compares the PDP with OPA for every load both ran.
func writeRatios(b *strings.Builder, res *scenarioResult) {
	var lines []string
	for _, pdp := range res.runs {
		if pdp.server != serverPDP {
			continue
		}
		opa := res.find(serverOPA, pdp.label)
		if opa == nil || opa.throughput() == 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("| %s | %.2fx | %s | %s | %s | %s |", pdp.label,
			pdp.throughput()/opa.throughput(),
			ratio(pdp.percentile(0.99), opa.percentile(0.99)),
			ratio(pdp.percentile(0.999), opa.percentile(0.999)),
			ratio(pdp.cpuPerDecision(), opa.cpuPerDecision()),
			ratioBytes(pdp.usage.peakRSS, opa.usage.peakRSS)))
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("PDP / OPA (below 1 is better for the PDP, except throughput):\n\n")
	b.WriteString("| load | throughput | p99 | p99.9 | CPU/decision | peak RSS |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	b.WriteString(strings.Join(lines, "\n") + "\n\n")
}

func ratio(a, b time.Duration) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

func ratioBytes(a, b int64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

func escapeCell(s string) string {
	return strings.ReplaceAll(s, "|", "\\|")
}

// benchLine is one benchmark's results across -count repetitions.
type benchLine struct {
	name                  string
	nsPerOp, bytes, alloc []float64
	// other holds metrics a benchmark reports itself (b.ReportMetric),
	// by unit, in the order the units first appear.
	other      map[string][]float64
	otherUnits []string
}

// writeMicro summarizes `go test -bench` output: the median of each
// metric over the repetitions of a benchmark.
func writeMicro(b *strings.Builder, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(b, "## Micro-benchmarks\n\nNot read: %v\n\n", err)
		return
	}
	var order, loads []string
	lines := map[string]*benchLine{}
	for _, line := range strings.Split(string(data), "\n") {
		if load, ok := strings.CutPrefix(line, "# load average "); ok {
			loads = append(loads, load)
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		bl := lines[fields[0]]
		if bl == nil {
			bl = &benchLine{name: fields[0]}
			lines[fields[0]] = bl
			order = append(order, fields[0])
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			switch fields[i+1] {
			case "ns/op":
				bl.nsPerOp = append(bl.nsPerOp, v)
			case "B/op":
				bl.bytes = append(bl.bytes, v)
			case "allocs/op":
				bl.alloc = append(bl.alloc, v)
			default:
				unit := fields[i+1]
				if bl.other == nil {
					bl.other = map[string][]float64{}
				}
				if _, seen := bl.other[unit]; !seen {
					bl.otherUnits = append(bl.otherUnits, unit)
				}
				bl.other[unit] = append(bl.other[unit], v)
			}
		}
	}
	fmt.Fprintf(b, "## Micro-benchmarks\n\n`go test -run '^$' -bench . -benchmem` (raw output in `%s`, "+
		"compare two such files with benchstat). Medians over the repetitions; parallel benchmarks report "+
		"wall time per operation across all goroutines.\n\n", path)
	if len(loads) > 0 {
		fmt.Fprintf(b, "Load average (/proc/loadavg) %s. The micro-benchmarks do not wait for a quiet "+
			"machine, so compare them only with runs taken at a similar load.\n\n", strings.Join(loads, "; "))
	}
	b.WriteString("| benchmark | runs | time/op | B/op | allocs/op | other metrics |\n" +
		"| --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, name := range order {
		bl := lines[name]
		other := make([]string, len(bl.otherUnits))
		for i, unit := range bl.otherUnits {
			other[i] = fmt.Sprintf("%.4g %s", median(bl.other[unit]), unit)
		}
		fmt.Fprintf(b, "| %s | %d | %s | %.0f | %.0f | %s |\n", name, len(bl.nsPerOp),
			fmtDur(time.Duration(median(bl.nsPerOp))), median(bl.bytes), median(bl.alloc), strings.Join(other, ", "))
	}
	b.WriteString("\n")
}

func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	return s[len(s)/2]
}
