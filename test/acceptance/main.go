// Command acceptance runs the PDP against an external corpus of bundles,
// policies, JWT vectors and Envoy CheckRequests, and prints one line per
// case and a pass/fail count per suite.
//
//	go run ./test/acceptance -corpus DIR [-suite bundles]
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
)

// suite is one folder of the corpus with the code that runs its cases.
type suite struct {
	name string
	run  func(corpus string, r *report)
}

var suites []suite

// register adds a suite; each suite file calls it from init.
func register(name string, run func(corpus string, r *report)) {
	suites = append(suites, suite{name: name, run: run})
}

// report collects case outcomes of one suite.
type report struct {
	suite  string
	passed int
	failed int
}

// pass records a passing case.
func (r *report) pass(name string) {
	r.passed++
	fmt.Printf("PASS %s/%s\n", r.suite, name)
}

// fail records a failing case with what differed.
func (r *report) fail(name, format string, args ...any) {
	r.failed++
	fmt.Printf("FAIL %s/%s: %s\n", r.suite, name, fmt.Sprintf(format, args...))
}

// check records name as passed when err is nil and as failed otherwise.
func (r *report) check(name string, err error) {
	if err != nil {
		r.fail(name, "%v", err)
		return
	}
	r.pass(name)
}

func main() {
	corpus := flag.String("corpus", "", "path to the corpus folder (required)")
	only := flag.String("suite", "", "run only the named suite")
	flag.Parse()
	if *corpus == "" {
		fmt.Fprintln(os.Stderr, "acceptance: -corpus is required: the folder of the acceptance corpus")
		os.Exit(2)
	}
	if _, err := os.Stat(*corpus); err != nil {
		fmt.Fprintf(os.Stderr, "acceptance: corpus folder: %v\n", err)
		os.Exit(2)
	}

	sort.Slice(suites, func(i, j int) bool { return suites[i].name < suites[j].name })
	var reports []*report
	for _, s := range suites {
		if *only != "" && s.name != *only {
			continue
		}
		r := &report{suite: s.name}
		s.run(*corpus, r)
		reports = append(reports, r)
	}

	failed := 0
	fmt.Println()
	for _, r := range reports {
		fmt.Printf("%-10s %d passed, %d failed\n", r.suite+":", r.passed, r.failed)
		failed += r.failed
	}
	if failed > 0 {
		os.Exit(1)
	}
}
