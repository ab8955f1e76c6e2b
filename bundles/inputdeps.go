package bundles

import (
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// inputDeps lists every part of the input that evaluating one query can
// read, found by walking the rules the query reaches. Two inputs that agree
// on all of them get the same result from the same revision, as long as no
// reached rule calls a builtin whose result can change between calls (see
// uncacheableBuiltin).
type inputDeps struct {
	// whole is set when a rule reads the input in a way the walk cannot
	// narrow down: the bare input document, a key chosen at evaluation
	// time at the input's top level, or a with modifier.
	whole bool
	// values are the paths whose values the rules read, relative to
	// input, sorted, and none a prefix of another.
	values []ast.Ref
	// truths are paths that rules only test (`input.x` or `not input.x`
	// as a whole expression), so only whether each is undefined, false or
	// something else matters.
	truths []ast.Ref
}

// analyzeQuery returns the input dependencies of the query ref against
// compiler, and false when a reached rule calls a builtin that makes the
// result vary with time, randomness or the outside world.
func analyzeQuery(compiler *ast.Compiler, ref ast.Ref) (*inputDeps, bool) {
	w := depWalker{compiler: compiler, seen: map[*ast.Rule]bool{}, cacheable: true}
	w.enqueue(ref)
	for len(w.queue) > 0 && w.cacheable {
		rule := w.queue[len(w.queue)-1]
		w.queue = w.queue[:len(w.queue)-1]
		ast.NewGenericVisitor(w.visit).Walk(rule)
	}
	if !w.cacheable {
		return nil, false
	}
	return w.deps.normalize(), true
}

// depWalker collects inputDeps over the rules reachable from a query.
type depWalker struct {
	compiler  *ast.Compiler
	seen      map[*ast.Rule]bool
	queue     []*ast.Rule
	deps      inputDeps
	cacheable bool
}

// enqueue adds the rules that a data reference can reach. A reference with
// a variable reaches every rule below its ground prefix.
func (w *depWalker) enqueue(ref ast.Ref) {
	for _, rule := range w.compiler.GetRules(ref.GroundPrefix()) {
		if !w.seen[rule] {
			w.seen[rule] = true
			w.queue = append(w.queue, rule)
		}
	}
}

// visit handles one AST node and reports whether to skip its children.
func (w *depWalker) visit(x any) bool {
	switch x := x.(type) {
	case *ast.Expr:
		if len(x.With) > 0 {
			w.deps.whole = true
		}
		for _, with := range x.With {
			// `with f as g` can put a builtin where a call was. A value
			// that is not a builtin name is an input, data or local
			// reference, which the walk handles as any other.
			name := with.Value.String()
			if _, ok := ast.BuiltinMap[name]; ok && uncacheableBuiltin(name) {
				w.cacheable = false
			}
		}
		if x.IsCall() {
			w.checkCall(x.Operator())
		}
		if term, ok := x.Terms.(*ast.Term); ok && len(x.With) == 0 {
			if ref, ok := term.Value.(ast.Ref); ok && ref.HasPrefix(ast.InputRootRef) && ref.IsGround() {
				w.deps.truths = append(w.deps.truths, ref[1:].Copy())
				return true
			}
		}
	case ast.Call:
		if ref, ok := x[0].Value.(ast.Ref); ok {
			w.checkCall(ref)
		}
	case ast.Ref:
		w.addRef(x)
	}
	return false
}

// checkCall marks the walk uncacheable for a call of a builtin whose result
// can differ between two evaluations of the same input. Calls of rules
// (functions under data) are followed through their data reference.
func (w *depWalker) checkCall(op ast.Ref) {
	if op.HasPrefix(ast.DefaultRootRef) {
		return
	}
	if uncacheableBuiltin(op.String()) {
		w.cacheable = false
	}
}

// addRef records an input path or follows a data reference.
func (w *depWalker) addRef(ref ast.Ref) {
	switch {
	case ref.HasPrefix(ast.InputRootRef):
		path := groundScalarPrefix(ref[1:])
		if len(path) == 0 {
			w.deps.whole = true
			return
		}
		w.deps.values = append(w.deps.values, path.Copy())
	case ref.HasPrefix(ast.DefaultRootRef):
		w.enqueue(ref)
	}
}

// groundScalarPrefix returns the leading terms of path that are strings or
// numbers, the keys a lookup can follow without evaluating anything.
func groundScalarPrefix(path ast.Ref) ast.Ref {
	for i, t := range path {
		switch t.Value.(type) {
		case ast.String, ast.Number:
		default:
			return path[:i]
		}
	}
	return path
}

// clockBuiltins read the clock without OPA marking them nondeterministic:
// io.jwt.decode_verify compares token times with the evaluation's time,
// and the certificate verifiers check validity at the current time unless
// the options name one.
// NOTE: the list comes from reading OPA v1.22.4's topdown package for uses
// of the evaluation time or time.Now; an OPA upgrade needs the same check.
var clockBuiltins = map[string]bool{
	ast.JWTDecodeVerify.Name:                                 true,
	ast.CryptoX509ParseAndVerifyCertificates.Name:            true,
	ast.CryptoX509ParseAndVerifyCertificatesWithOptions.Name: true,
}

// uncacheableBuiltin reports whether the builtin name can return different
// results for the same arguments: those OPA marks nondeterministic
// (time.now_ns, http.send, rand.intn, ...) and clockBuiltins. A name the
// compiler does not know as an OPA builtin counts as uncacheable too.
func uncacheableBuiltin(name string) bool {
	if clockBuiltins[name] {
		return true
	}
	b, ok := ast.BuiltinMap[name]
	return !ok || b.Nondeterministic
}

// normalize sorts the paths and drops every path that another value path
// covers, since the value of a prefix includes everything below it.
func (d inputDeps) normalize() *inputDeps {
	if d.whole {
		return &inputDeps{whole: true}
	}
	values := prunePrefixed(d.values, d.values, false)
	truths := prunePrefixed(d.truths, values, true)
	return &inputDeps{values: values, truths: truths}
}

// prunePrefixed returns paths sorted and deduplicated, without those that
// have a proper prefix in covers, or with orEqual any prefix at all.
func prunePrefixed(paths, covers []ast.Ref, orEqual bool) []ast.Ref {
	sorted := slices.Clone(paths)
	slices.SortFunc(sorted, func(a, b ast.Ref) int { return a.Compare(b) })
	sorted = slices.CompactFunc(sorted, func(a, b ast.Ref) bool { return a.Equal(b) })
	out := sorted[:0]
	for _, p := range sorted {
		covered := false
		for _, c := range covers {
			if (len(c) < len(p) || orEqual) && p.HasPrefix(c) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	return out
}
