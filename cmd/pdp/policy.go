package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/authgate/pdp/policies"
)

const policyTestUsage = `usage: pdp policy test [-v] [-run REGEX] [-timeout DURATION] [BUNDLE]

Runs the Rego unit tests (rules named test_*) of a bundle, as opa test does,
and exits 1 when a test fails or errors. BUNDLE is a bundle directory or a
.tar.gz file; without it the shipped bundle embedded in this binary is
tested. Signatures are not verified: the tests check policy logic only.

flags:
`

// runPolicyTest implements `pdp policy test`.
func runPolicyTest(args []string) int {
	fs := flag.NewFlagSet("pdp policy test", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), policyTestUsage)
		fs.PrintDefaults()
	}
	verbose := fs.Bool("v", false, "print every test result and the trace of failed tests")
	run := fs.String("run", "", "run only tests whose data reference matches this regular expression")
	timeout := fs.Duration("timeout", 5*time.Second, "time limit for each test")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return 2
	}

	b, name, err := readTestBundle(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "pdp policy test: %v\n", err)
		return 1
	}
	failed, err := runBundleTests(context.Background(), os.Stdout, b, name, testSettings{
		verbose: *verbose, filter: *run, timeout: *timeout,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pdp policy test: %s: %v\n", name, err)
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

type testSettings struct {
	verbose bool
	filter  string
	timeout time.Duration
}

// readTestBundle reads the bundle at path, or the embedded shipped bundle
// when path is empty, and returns it with a name for messages.
func readTestBundle(path string) (*bundle.Bundle, string, error) {
	var loader bundle.DirectoryLoader
	name := path
	switch {
	case path == "":
		name = "embedded bundle"
		l, err := bundle.NewFSLoader(policies.Bundle)
		if err != nil {
			return nil, name, err
		}
		loader = l
	default:
		info, err := os.Stat(path)
		if err != nil {
			return nil, name, err
		}
		if info.IsDir() {
			loader = bundle.NewDirectoryLoader(path)
			break
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, name, err
		}
		defer f.Close()
		loader = bundle.NewTarballLoaderWithBaseURL(f, path)
	}

	b, err := bundle.NewCustomReader(loader).
		WithSkipBundleVerification(true).
		WithRegoVersion(ast.RegoV1).
		Read()
	if err != nil {
		return nil, name, fmt.Errorf("read bundle %s: %w", name, err)
	}
	return &b, name, nil
}

// runBundleTests runs the tests of b with OPA's test runner and prints the
// results in opa test's format. It returns true when a test failed or
// errored.
func runBundleTests(ctx context.Context, out io.Writer, b *bundle.Bundle, name string, s testSettings) (bool, error) {
	store := inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false))
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return false, err
	}
	defer store.Abort(ctx, txn)

	runner := tester.NewRunner().
		SetStore(store).
		SetBundles(map[string]*bundle.Bundle{name: b}).
		SetDefaultRegoVersion(ast.RegoV1).
		SetTimeout(s.timeout).
		CapturePrintOutput(true).
		EnableTracing(s.verbose).
		Filter(s.filter)
	results, err := runner.RunTests(ctx, txn)
	if err != nil {
		return false, err
	}

	// Count failures while the reporter prints, so the exit code does not
	// depend on parsing the report.
	reported := make(chan *tester.Result)
	failed := false
	go func() {
		defer close(reported)
		for r := range results {
			if r.Fail || r.Error != nil {
				failed = true
			}
			reported <- r
		}
	}()
	reporter := tester.PrettyReporter{Output: out, Verbose: s.verbose, FailureLine: true}
	if err := reporter.Report(reported); err != nil {
		return true, err
	}
	return failed, nil
}
