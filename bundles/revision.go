package bundles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/authgate/pdp/pdp"
)

// ErrMissingEntrypoint marks a bundle that defines neither the configured
// entrypoint nor its sibling "allow" rule.
var ErrMissingEntrypoint = errors.New("missing entrypoint")

// revision is one compiled, immutable bundle revision. Its store is never
// written after compile returns, so evaluations need no locking.
type revision struct {
	id         string
	source     string
	entrypoint string
	activated  time.Time

	store    storage.Store
	compiler *ast.Compiler
	decision preparedQuery
	// queries caches prepared /v1/data queries by slash-separated path.
	queries *lru.Cache[string, preparedQuery]
	// results caches evaluation results; nil when turned off.
	results *decisionCache
}

// preparedQuery is a query ready to evaluate, with the input parts its
// result depends on; deps is nil when results must not be cached.
type preparedQuery struct {
	ref  string
	eval rego.PreparedEvalQuery
	deps *inputDeps
}

var _ pdp.Policy = (*revision)(nil)

// compileOptions are the settings compile needs from the Manager.
type compileOptions struct {
	entrypoint        ast.Ref
	queryCacheSize    int
	decisionCacheSize int
	cacheStats        *CacheStats
	source            string
}

// compile builds a revision from a bundle that OPA's reader has already
// checked (manifest, roots, signatures). It compiles the modules against
// the bundle's data, resolves the entrypoint and prepares the decision
// query.
func compile(ctx context.Context, b *bundle.Bundle, opts compileOptions) (*revision, error) {
	if b.Type() == bundle.DeltaBundleType {
		return nil, errors.New("delta bundles are not supported: serve a snapshot bundle")
	}

	// The store keeps the data as AST values, so an evaluation that reads
	// data does not convert it from Go values each time. OPA's server does
	// this only with --optimize-store-for-read-speed.
	store := inmem.NewFromObjectWithOpts(b.Data,
		inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	compiler, err := compileModules(ctx, store, b)
	if err != nil {
		return nil, err
	}

	entrypoint, err := resolveEntrypoint(ctx, compiler, store, opts.entrypoint)
	if err != nil {
		return nil, err
	}
	decision, err := prepare(ctx, compiler, store, entrypoint)
	if err != nil {
		return nil, fmt.Errorf("prepare %v: %w", entrypoint, err)
	}
	queries, err := lru.New[string, preparedQuery](opts.queryCacheSize)
	if err != nil {
		return nil, err
	}
	results, err := newDecisionCache(opts.decisionCacheSize, opts.cacheStats)
	if err != nil {
		return nil, err
	}

	return &revision{
		id:         revisionID(b),
		source:     opts.source,
		entrypoint: entrypoint.String(),
		store:      store,
		compiler:   compiler,
		decision:   decision,
		queries:    queries,
		results:    results,
	}, nil
}

func compileModules(ctx context.Context, store storage.Store, b *bundle.Bundle) (*ast.Compiler, error) {
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)

	// The path conflicts check rejects a rule whose path is also a data
	// document of the bundle, which OPA's bundle activation rejects too.
	compiler := ast.NewCompiler().
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn)).
		WithEnablePrintStatements(false)
	compiler.Compile(b.ParsedModules(""))
	if compiler.Failed() {
		return nil, compiler.Errors
	}
	return compiler, nil
}

// resolveEntrypoint returns want when the bundle defines it as a rule or a
// data document, or else the sibling "allow" reference when that is defined.
func resolveEntrypoint(ctx context.Context, c *ast.Compiler, store storage.Store, want ast.Ref) (ast.Ref, error) {
	if defined(ctx, c, store, want) {
		return want, nil
	}
	fallback := append(want[:len(want)-1:len(want)-1], ast.StringTerm("allow"))
	if !fallback.Equal(want) && defined(ctx, c, store, fallback) {
		return fallback, nil
	}
	return nil, fmt.Errorf("%w: the bundle defines neither %v nor %v", ErrMissingEntrypoint, want, fallback)
}

func defined(ctx context.Context, c *ast.Compiler, store storage.Store, ref ast.Ref) bool {
	if len(c.GetRules(ref)) > 0 {
		return true
	}
	path, err := storage.NewPathForRef(ref)
	if err != nil {
		return false
	}
	_, err = storage.ReadOne(ctx, store, path)
	return err == nil
}

func prepare(ctx context.Context, c *ast.Compiler, store storage.Store, ref ast.Ref) (preparedQuery, error) {
	query := ast.NewBody(ast.NewExpr(ast.NewTerm(ref)))
	eval, err := rego.New(
		rego.ParsedQuery(query),
		rego.Compiler(c),
		rego.Store(store),
	).PrepareForEval(ctx)
	if err != nil {
		return preparedQuery{}, err
	}
	pq := preparedQuery{ref: ref.String(), eval: eval}
	if deps, ok := analyzeQuery(c, ref); ok {
		pq.deps = deps
	}
	return pq, nil
}

// revisionID returns the manifest revision, or for a bundle without one a
// short SHA-256 over its modules, data and manifest, so that bundles with
// different content get different revisions.
func revisionID(b *bundle.Bundle) string {
	if b.Manifest.Revision != "" {
		return b.Manifest.Revision
	}
	h := sha256.New()
	modules := slices.Clone(b.Modules)
	slices.SortFunc(modules, func(a, b bundle.ModuleFile) int { return strings.Compare(a.Path, b.Path) })
	for _, m := range modules {
		fmt.Fprintf(h, "module %q %d\n", m.Path, len(m.Raw))
		h.Write(m.Raw)
	}
	// encoding/json writes map keys in sorted order, so equal data hashes
	// equally.
	data, _ := json.Marshal(b.Data)
	fmt.Fprintf(h, "data %d\n", len(data))
	h.Write(data)
	manifest, _ := json.Marshal(b.Manifest)
	h.Write(manifest)
	return "sha256-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// Revision returns the manifest revision or the content hash.
func (r *revision) Revision() string { return r.id }

// Eval evaluates the decision entrypoint on input.
func (r *revision) Eval(ctx context.Context, input ast.Value) (any, bool, error) {
	return r.evalCached(ctx, r.decision, input)
}

// Query evaluates the document at a slash-separated data path such as
// "pdp/authz/decision". An empty path is the whole data document. Prepared
// queries are cached per revision, up to the configured cache size.
func (r *revision) Query(ctx context.Context, path string, input any) (any, bool, error) {
	key := strings.Trim(path, "/")
	query, ok := r.queries.Get(key)
	if !ok {
		var err error
		query, err = prepare(ctx, r.compiler, r.store, dataRef(key))
		if err != nil {
			return nil, false, fmt.Errorf("prepare data path %q: %w", key, err)
		}
		r.queries.Add(key, query)
	}
	value, err := toValue(input)
	if err != nil {
		return nil, false, err
	}
	return r.evalCached(ctx, query, value)
}

// toValue converts a query input to an AST value; nil stays nil.
func toValue(input any) (ast.Value, error) {
	if input == nil {
		return nil, nil
	}
	value, err := ast.InterfaceToValue(input)
	if err != nil {
		return nil, fmt.Errorf("convert input: %w", err)
	}
	return value, nil
}

// evalCached returns the cached result of query on input when there is
// one, and otherwise evaluates and caches it. Errors are not cached.
func (r *revision) evalCached(ctx context.Context, query preparedQuery, input ast.Value) (any, bool, error) {
	if r.results == nil || query.deps == nil {
		return evalPrepared(ctx, query.eval, input)
	}
	key := query.deps.key(query.ref, input)
	if hit, ok := r.results.entries.Get(key); ok {
		r.results.stats.Hits.Add(1)
		return hit.value, hit.defined, nil
	}
	value, defined, err := evalPrepared(ctx, query.eval, input)
	if err != nil {
		return nil, false, err
	}
	if cached, ok := cloneWithin(value, maxCachedResult); ok {
		r.results.stats.Misses.Add(1)
		r.results.entries.Add(key, cachedResult{value: cached, defined: defined})
	}
	return value, defined, nil
}

// dataRef turns "a/b/c" into data.a.b.c with OPA's REST API rules: each
// segment is percent-decoded ("a%2Fb" names the key "a/b"), an integer
// segment is a number, any other one a string, and empty segments are
// skipped.
func dataRef(path string) ast.Ref {
	ref := ast.Ref{ast.DefaultRootDocument}
	if path == "" {
		return ref
	}
	for _, seg := range strings.Split(path, "/") {
		if decoded, err := url.PathUnescape(seg); err == nil {
			seg = decoded
		}
		if seg == "" {
			continue
		}
		if n, err := strconv.ParseInt(seg, 10, 64); err == nil {
			ref = append(ref, ast.InternedTerm(n))
			continue
		}
		ref = append(ref, ast.StringTerm(seg))
	}
	return ref
}

// evalPrepared evaluates query on input. The result holds plain Go values,
// with numbers as json.Number.
func evalPrepared(ctx context.Context, query rego.PreparedEvalQuery, input ast.Value) (result any, defined bool, err error) {
	// A panic inside OPA's evaluation (for example on a value its builtins
	// do not expect) becomes an error, so the caller denies and audits the
	// decision like any other evaluation error.
	defer func() {
		if p := recover(); p != nil {
			result, defined, err = nil, false, fmt.Errorf("policy evaluation panicked: %v", p)
		}
	}()
	// The query gets its own cancellation handle: without one, OPA starts
	// a goroutine per evaluation to watch ctx.
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	defer stop()
	opts := make([]rego.EvalOption, 0, 2)
	opts = append(opts, rego.EvalExternalCancel(cancel))
	if input != nil {
		opts = append(opts, rego.EvalParsedInput(input))
	}
	rs, err := query.Eval(ctx, opts...)
	if err != nil {
		return nil, false, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, false, nil
	}
	return rs[0].Expressions[0].Value, true, nil
}
