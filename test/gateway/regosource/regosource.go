// Package regosource compiles Rego modules with OPA's rego package into a
// pdp.PolicySource, for tests that need a real engine without a bundle.
package regosource

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/authgate/pdp/pdp"
)

// Policy is one compiled set of modules with a prepared decision query.
type Policy struct {
	revision string
	compiler *ast.Compiler
	store    storage.Store
	decision rego.PreparedEvalQuery

	mu      sync.Mutex
	queries map[string]rego.PreparedEvalQuery
}

var _ pdp.Policy = (*Policy)(nil)

// Compile parses and compiles modules (file name to Rego source, Rego v1)
// with data as the base document. entrypoint names the decision document
// as a data path, "envoy/authz/allow" or "data.envoy.authz.allow".
func Compile(ctx context.Context, modules map[string]string, data map[string]any, entrypoint string) (*Policy, error) {
	parsed := make(map[string]*ast.Module, len(modules))
	for name, src := range modules {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		parsed[name] = m
	}
	compiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if compiler.Compile(parsed); compiler.Failed() {
		return nil, fmt.Errorf("compile: %w", compiler.Errors)
	}
	if data == nil {
		data = map[string]any{}
	}
	p := &Policy{
		revision: "test",
		compiler: compiler,
		store:    inmem.NewFromObject(data),
		queries:  map[string]rego.PreparedEvalQuery{},
	}
	query, err := pathQuery(entrypoint)
	if err != nil {
		return nil, err
	}
	p.decision, err = p.prepare(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", query, err)
	}
	return p, nil
}

// MustCompile is Compile for a single module that panics on error.
func MustCompile(src, entrypoint string) *Policy {
	p, err := Compile(context.Background(), map[string]string{"policy.rego": src}, nil, entrypoint)
	if err != nil {
		panic(err)
	}
	return p
}

// WithRevision sets the revision name reported to the engine.
func (p *Policy) WithRevision(rev string) *Policy {
	p.revision = rev
	return p
}

func (p *Policy) prepare(ctx context.Context, query string) (rego.PreparedEvalQuery, error) {
	return rego.New(
		rego.Query(query),
		rego.Compiler(p.compiler),
		rego.Store(p.store),
	).PrepareForEval(ctx)
}

// Revision returns the revision name, "test" unless set.
func (p *Policy) Revision() string { return p.revision }

// Eval evaluates the decision entrypoint.
func (p *Policy) Eval(ctx context.Context, input ast.Value) (any, bool, error) {
	return evalPrepared(ctx, p.decision, input, true)
}

// Query evaluates the document at a slash-separated data path.
func (p *Policy) Query(ctx context.Context, path string, input any) (any, bool, error) {
	query, err := pathQuery(path)
	if err != nil {
		return nil, false, err
	}
	p.mu.Lock()
	pq, ok := p.queries[query]
	p.mu.Unlock()
	if !ok {
		pq, err = p.prepare(ctx, query)
		if err != nil {
			return nil, false, err
		}
		p.mu.Lock()
		p.queries[query] = pq
		p.mu.Unlock()
	}
	return evalPrepared(ctx, pq, input, input != nil)
}

func evalPrepared(ctx context.Context, pq rego.PreparedEvalQuery, input any, hasInput bool) (any, bool, error) {
	var opts []rego.EvalOption
	switch v := input.(type) {
	case ast.Value:
		opts = append(opts, rego.EvalParsedInput(v))
	default:
		if hasInput {
			opts = append(opts, rego.EvalInput(input))
		}
	}
	rs, err := pq.Eval(ctx, opts...)
	if err != nil {
		return nil, false, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, false, nil
	}
	return rs[0].Expressions[0].Value, true, nil
}

// pathQuery turns "a/b/1" or "data.a.b" into a Rego reference query,
// reading segments as OPA's REST API does: percent-decoded, integers as
// array indexes.
func pathQuery(path string) (string, error) {
	if strings.HasPrefix(path, "data.") || path == "data" {
		return path, nil
	}
	ref := ast.Ref{ast.DefaultRootDocument}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" {
			continue
		}
		if s, err := url.PathUnescape(seg); err == nil {
			seg = s
		}
		if strings.Contains(seg, `"`) {
			return "", fmt.Errorf("invalid path segment %q", seg)
		}
		if n, err := strconv.ParseInt(seg, 10, 64); err == nil {
			ref = append(ref, ast.IntNumberTerm(int(n)))
			continue
		}
		ref = append(ref, ast.StringTerm(seg))
	}
	return ref.String(), nil
}

// Source is a pdp.PolicySource whose active policy can be replaced.
type Source struct {
	mu     sync.RWMutex
	policy pdp.Policy
}

var _ pdp.PolicySource = (*Source)(nil)

// NewSource returns a Source with p active; p may be nil.
func NewSource(p pdp.Policy) *Source { return &Source{policy: p} }

// Active returns the active policy, nil when none.
func (s *Source) Active() pdp.Policy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.policy
}

// Set makes p the active policy.
func (s *Source) Set(p pdp.Policy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy = p
}

// Auditor keeps audit events in memory.
type Auditor struct {
	mu     sync.Mutex
	events []pdp.AuditEvent
}

var _ pdp.Auditor = (*Auditor)(nil)

// Record stores a copy of ev.
func (a *Auditor) Record(_ context.Context, ev *pdp.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, *ev)
	return nil
}

// Events returns a copy of the recorded events.
func (a *Auditor) Events() []pdp.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]pdp.AuditEvent(nil), a.events...)
}

// Find returns the event with the decision id, or false.
func (a *Auditor) Find(decisionID string) (pdp.AuditEvent, bool) {
	for _, ev := range a.Events() {
		if ev.DecisionID == decisionID {
			return ev, true
		}
	}
	return pdp.AuditEvent{}, false
}

// NewEngine returns an engine over p with one route that requires nothing,
// and the auditor that keeps its records.
func NewEngine(p pdp.Policy, opts pdp.Options) (*pdp.Engine, *Auditor, error) {
	aud := &Auditor{}
	opts.Policies = NewSource(p)
	opts.Auditor = aud
	if opts.Routes == nil && opts.DefaultRoute == nil {
		opts.Routes = []pdp.Route{{Name: "default"}}
	}
	if opts.Instance == "" {
		opts.Instance = "test"
	}
	e, err := pdp.New(opts)
	return e, aud, err
}
