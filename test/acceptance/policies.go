package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/authgate/pdp/bundles"
	"github.com/authgate/pdp/pdp"
)

func init() {
	register("policies", runPolicySuite)
}

// policyCase is one row of a corpus cases.json.
type policyCase struct {
	Name   string `json:"name"`
	Query  string `json:"query"`
	Input  any    `json:"input"`
	Expect any    `json:"expect"`
}

// nonLoopbackPolicies lists corpus policies that call http.send on a host
// other than loopback. They are not evaluated, because tests send traffic
// only to 127.0.0.1 and ::1.
var nonLoopbackPolicies = map[string]string{
	"opa-docs-oidc-jwks-kid-cache-key": "fetches a JWKS from authorization-server.example.com",
}

// runPolicySuite builds a bundle from each corpus policy (policy.rego and
// data.json only), activates it with the product's bundle manager and
// evaluates every case of its cases.json through Policy.Query, the path the
// OPA REST API /v1/data/{path} uses.
func runPolicySuite(corpus string, r *report) {
	root := filepath.Join(corpus, "policies")
	entries, err := os.ReadDir(root)
	if err != nil {
		r.fail("setup", "%v", err)
		return
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		runPolicyDir(filepath.Join(root, name), name, r)
	}
}

func runPolicyDir(dir, name string, r *report) {
	raw, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		r.fail(name, "%v", err)
		return
	}
	var cases []policyCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		r.fail(name, "cases.json: %v", err)
		return
	}
	if why, ok := nonLoopbackPolicies[name]; ok {
		r.fail(name, "not run: the policy %s, and tests reach only loopback hosts", why)
		return
	}

	policy, m, cleanup, err := loadCorpusPolicy(dir, cases[0].Query)
	defer cleanup()
	if err != nil {
		r.fail(name, "load: %v", err)
		return
	}
	defer m.Stop()
	for _, c := range cases {
		r.check(name+"/"+c.Name, evalPolicyCase(policy, c))
	}
}

// packageLine finds a module's package clause.
var packageLine = regexp.MustCompile(`(?m)^package\s`)

// authorinoPackage is the package the harness gives to an inline Authorino
// policy, which Authorino writes without one.
const authorinoPackage = "authorino.authz"

// loadCorpusPolicy writes policy.rego and data.json into a temporary bundle
// directory and starts a manager on it with the first query as entrypoint.
func loadCorpusPolicy(dir, query string) (pdp.Policy, *bundles.Manager, func(), error) {
	tmp, err := os.MkdirTemp("", "pdp-policy-case-")
	cleanup := func() { os.RemoveAll(tmp) }
	if err != nil {
		return nil, nil, cleanup, err
	}
	module, err := os.ReadFile(filepath.Join(dir, "policy.rego"))
	if err != nil {
		return nil, nil, cleanup, err
	}
	if !packageLine.Match(module) {
		module = append([]byte("package "+authorinoPackage+"\n\n"), module...)
	}
	if err := os.WriteFile(filepath.Join(tmp, "policy.rego"), module, 0o644); err != nil {
		return nil, nil, cleanup, err
	}
	data, err := os.ReadFile(filepath.Join(dir, "data.json"))
	if err == nil {
		err = os.WriteFile(filepath.Join(tmp, "data.json"), data, 0o644)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, cleanup, err
	}

	watch := false
	cfg := bundles.Config{Path: tmp, Entrypoint: queryRef(query), Watch: &watch}
	m, err := bundles.NewManager(cfg, bundles.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, nil, cleanup, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		m.Stop()
		return nil, nil, cleanup, err
	}
	return m.Active(), m, cleanup, nil
}

// queryRef turns a case query into a data reference. A bare rule name
// refers to the Authorino package.
func queryRef(query string) string {
	if strings.HasPrefix(query, "data.") {
		return query
	}
	return "data." + authorinoPackage + "." + query
}

func evalPolicyCase(policy pdp.Policy, c policyCase) error {
	path := strings.ReplaceAll(strings.TrimPrefix(queryRef(c.Query), "data."), ".", "/")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	result, defined, err := policy.Query(ctx, path, c.Input)
	if err != nil {
		return fmt.Errorf("query %s: %v", c.Query, err)
	}

	switch want := c.Expect.(type) {
	case bool:
		// Authorino reports an undefined allow as a deny, and its cases
		// were written with that meaning. OPA's own cases tell undefined
		// and false apart.
		if !defined && !want && !strings.HasPrefix(c.Query, "data.") {
			return nil
		}
		if !defined {
			return fmt.Errorf("%s is undefined, want %v", c.Query, want)
		}
		if result != want {
			return fmt.Errorf("%s = %v, want %v", c.Query, result, want)
		}
	case string:
		// Expectations such as "undefined (no default) => treat as deny".
		if !strings.HasPrefix(want, "undefined") {
			return fmt.Errorf("cannot check expectation %q", want)
		}
		if defined {
			return fmt.Errorf("%s = %v, want undefined", c.Query, result)
		}
	default:
		return fmt.Errorf("cannot check expectation %v", c.Expect)
	}
	return nil
}
