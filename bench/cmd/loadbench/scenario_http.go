package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Rates of the fixed-rate runs.
const (
	// gatewayRate is the rate at which scenarios 2 to 4 must keep p99 under
	// 1 ms.
	gatewayRate = 2000
	// memoryRate is the rate at which RSS must stay under 100 MB, and at
	// which scenario 3 must keep up.
	memoryRate = 10000
	// maxRSS is the memory target: 100 MB in bytes.
	maxRSS = 100_000_000
)

// dataPath is the shipped policy's decision document on the OPA REST API.
const dataPath = "/v1/data/pdp/authz/decision"

// runPolicyScenario compares POST /v1/data/pdp/authz/decision with the
// same gateway-shaped input on both servers.
func runPolicyScenario(ctx context.Context, h *harness, res *scenarioResult) error {
	dir, err := h.scenarioDir(res.id)
	if err != nil {
		return err
	}
	bundleDir := filepath.Join(dir, "bundle")
	if err := writeShippedBundle(bundleDir); err != nil {
		return err
	}
	body := mustJSON(map[string]any{"input": scenarioJSON("gateway-input.json")})
	res.setup = append(res.setup,
		"Both servers: `POST "+dataPath+"` with the body `{\"input\": ...}` of `bench/scenarios/gateway-input.json` "+
			"(an Envoy-shaped input with a verified identity); the shipped bundle; allowed.",
		"PDP: audit durability batch (each answer waits for its record's fsync, shared by concurrent decisions). "+
			"OPA: decision logging off (its default).")

	pdpSrv, err := h.startPDP(ctx, dir, nil)
	if err != nil {
		return err
	}
	defer pdpSrv.stop()
	status, _, err := postJSON(ctx, pdpSrv.baseURL+dataPath, body)
	if err != nil {
		return err
	}
	if status == 404 || status == 405 {
		res.skipped = fmt.Sprintf("not yet available: the PDP's OPA REST endpoint POST /v1/data/{path} "+
			"(the built command answered %d)", status)
		return nil
	}
	opaSrv, err := h.startOPA(ctx, dir, bundleDir)
	if err != nil {
		return err
	}
	defer opaSrv.stop()

	pdpLoad := loadTarget{pdpSrv, staticWorkload(pdpSrv.baseURL+dataPath, body, checkDataAllowed)}
	opaLoad := loadTarget{opaSrv, staticWorkload(opaSrv.baseURL+dataPath, body, checkDataAllowed)}
	if err := checkProbe(ctx, pdpLoad, opaLoad); err != nil {
		return err
	}
	if err := h.warm(ctx, opaLoad, pdpLoad); err != nil {
		return err
	}
	if err := h.runPair(ctx, res, 0, opaLoad, pdpLoad); err != nil {
		return err
	}
	opaSat, pdpSat := res.find(serverOPA, "saturation"), res.find(serverPDP, "saturation")
	half := max(int(opaSat.throughput()/2), 100)
	if err := h.runPair(ctx, res, half, opaLoad, pdpLoad); err != nil {
		return err
	}
	if err := h.runPair(ctx, res, memoryRate, pdpLoad); err != nil {
		return err
	}
	if err := h.runWithoutFsync(ctx, res, dir, body); err != nil {
		return err
	}
	if err := h.runDistinctInputs(ctx, res, pdpSrv, opaSrv); err != nil {
		return err
	}

	ratio := pdpSat.throughput() / opaSat.throughput()
	res.target("PDP throughput at saturation >= 1.5x OPA's",
		fmt.Sprintf("%.0f/s vs %.0f/s = %.2fx", pdpSat.throughput(), opaSat.throughput(), ratio), ratio >= 1.5)
	opaHalf, pdpHalf := res.find(serverOPA, rateLabel(half)), res.find(serverPDP, rateLabel(half))
	res.target(fmt.Sprintf("PDP p99 at half of OPA's saturation rate (%d/s) <= OPA's", half),
		fmt.Sprintf("%s vs %s", fmtDur(pdpHalf.percentile(0.99)), fmtDur(opaHalf.percentile(0.99))),
		pdpHalf.percentile(0.99) <= opaHalf.percentile(0.99))
	h.memoryTarget(res, res.find(serverPDP, rateLabel(memoryRate)))
	return nil
}

// runWithoutFsync measures a second PDP whose audit log writes without
// fsync (durability none) at saturation, to show what the fsync costs.
func (h *harness) runWithoutFsync(ctx context.Context, res *scenarioResult, dir string, body []byte) error {
	noneDir := filepath.Join(dir, "durability-none")
	if err := os.MkdirAll(noneDir, 0o755); err != nil {
		return err
	}
	srv, err := h.startPDP(ctx, noneDir, map[string]any{
		"audit": map[string]any{"dir": filepath.Join(noneDir, "audit"), "durability": "none"},
	})
	if err != nil {
		return err
	}
	defer srv.stop()
	srv.name = serverPDP + " (audit none)"
	load := loadTarget{srv, staticWorkload(srv.baseURL+dataPath, body, checkDataAllowed)}
	if err := h.warm(ctx, load); err != nil {
		return err
	}
	return h.runPair(ctx, res, 0, load)
}

// distinctInputs is the number of different request bodies of the
// distinct-input runs, more than the PDP's default decision cache holds,
// so cycling through them in order never finds a cached result.
const distinctInputs = 20000

// runDistinctInputs runs both servers at saturation on inputs that each
// name another document, so every PDP decision evaluates the policy, as
// in traffic that never repeats a question.
func (h *harness) runDistinctInputs(ctx context.Context, res *scenarioResult, pdpSrv, opaSrv *server) error {
	input := scenarioJSON("gateway-input.json").(map[string]any)
	httpAttrs := input["attributes"].(map[string]any)["request"].(map[string]any)["http"].(map[string]any)
	bodies := make([][]byte, distinctInputs)
	for i := range bodies {
		doc := fmt.Sprintf("d-%d", i)
		httpAttrs["path"] = "/tenants/t-42/documents/" + doc
		input["parsed_path"] = []string{"tenants", "t-42", "documents", doc}
		bodies[i] = mustJSON(map[string]any{"input": input})
	}
	workload := func(srv *server) loadTarget {
		named := *srv
		named.name = srv.name + " (distinct inputs)"
		return loadTarget{&named, httpWorkload{
			next: func(seq uint64) request {
				return request{method: "POST", url: srv.baseURL + dataPath, header: jsonHeader,
					body: bodies[seq%distinctInputs]}
			},
			check: checkDataAllowed,
		}}
	}
	res.setup = append(res.setup, fmt.Sprintf("Rows marked \"distinct inputs\": the same input, but each request "+
		"names one of %d documents in turn, more than the PDP's decision cache holds, so the PDP evaluates "+
		"the policy for every request. The other PDP rows repeat one input, which after the first request "+
		"the PDP answers from its decision cache (see docs/bundles.md).", distinctInputs))
	return h.runPair(ctx, res, 0, workload(opaSrv), workload(pdpSrv))
}

// runDirectScenario compares the PDP's own decision API with OPA's data
// API on the same AuthZEN-shaped input. The PDP also routes, builds its
// input, digests it and writes an audit record; OPA only evaluates.
func runDirectScenario(ctx context.Context, h *harness, res *scenarioResult) error {
	dir, err := h.scenarioDir(res.id)
	if err != nil {
		return err
	}
	bundleDir := filepath.Join(dir, "bundle")
	if err := writeShippedBundle(bundleDir); err != nil {
		return err
	}
	request := scenarioJSON("authzen-request.json")
	res.setup = append(res.setup,
		"PDP: `POST /v1/decision` with `bench/scenarios/authzen-request.json`; the engine adds input.pdp, "+
			"digests the input and writes a hash-chained audit record (durability batch) before answering.",
		"OPA: `POST "+dataPath+"` with the same document as input; no audit.")

	pdpSrv, err := h.startPDP(ctx, dir, nil)
	if err != nil {
		return err
	}
	defer pdpSrv.stop()
	opaSrv, err := h.startOPA(ctx, dir, bundleDir)
	if err != nil {
		return err
	}
	defer opaSrv.stop()

	pdpLoad := loadTarget{pdpSrv, staticWorkload(pdpSrv.baseURL+"/v1/decision", mustJSON(request), checkDecisionAllow)}
	opaLoad := loadTarget{opaSrv, staticWorkload(opaSrv.baseURL+dataPath,
		mustJSON(map[string]any{"input": request}), checkDataAllowed)}
	if err := checkProbe(ctx, pdpLoad, opaLoad); err != nil {
		return err
	}
	if err := h.warm(ctx, opaLoad, pdpLoad); err != nil {
		return err
	}
	for _, rate := range []int{0, gatewayRate} {
		if err := h.runPair(ctx, res, rate, opaLoad, pdpLoad); err != nil {
			return err
		}
	}
	if err := h.runPair(ctx, res, memoryRate, pdpLoad); err != nil {
		return err
	}
	if err := pdpSrv.stop(); err != nil {
		res.note("PDP stop: %v", err)
	}
	h.auditCheck(ctx, res, filepath.Join(dir, "audit"))
	h.memoryTarget(res, res.find(serverPDP, rateLabel(memoryRate)))
	return nil
}

// runJWTScenario sends decisions with an ES256 bearer token to the PDP,
// which verifies it against a configured issuer, and the same token to
// OPA, where a Rego wrapper verifies it with io.jwt.decode_verify.
func runJWTScenario(ctx context.Context, h *harness, res *scenarioResult) error {
	dir, err := h.scenarioDir(res.id)
	if err != nil {
		return err
	}
	signer, err := newTokenSigner()
	if err != nil {
		return err
	}
	const poolSize = 1000
	tokens, err := signer.tokenPool(poolSize)
	if err != nil {
		return err
	}
	pemKey, err := signer.publicKeyPEM()
	if err != nil {
		return err
	}
	keyFile := filepath.Join(dir, "issuer-es256.pem")
	if err := os.WriteFile(keyFile, pemKey, 0o644); err != nil {
		return err
	}
	bundleDir := filepath.Join(dir, "bundle")
	if err := writeJWTBundle(bundleDir, signer); err != nil {
		return err
	}

	res.setup = append(res.setup,
		fmt.Sprintf("%d ES256 tokens for distinct subjects, used round robin (each token is seen again "+
			"after %d requests, so the PDP's verified-token cache, default 10,000 entries, serves "+
			"repeats as a gateway's traffic would).", poolSize, poolSize),
		"PDP: `POST /v1/decision` with `token` and `http` (GET /tenants/t-42/documents/d-1); a route on "+
			"/tenants/** requires a token of the configured issuer (static PEM key).",
		"OPA: `POST /v1/data/pdp/bench_jwt/decision`; `bench/scenarios/jwt.rego` verifies the token "+
			"with io.jwt.decode_verify against a JWKS in data and passes the claims to the shipped policy.")

	pdpSrv, err := h.startPDP(ctx, dir, map[string]any{
		"identity": map[string]any{
			"issuers": []any{map[string]any{
				"name": "bench", "issuer": benchIssuer, "audiences": []string{benchAudience},
				"keys":         []any{map[string]any{"id": benchKeyID, "file": keyFile}},
				"tenant_claim": "tenant",
			}},
		},
		"routes": []any{
			map[string]any{"name": "api", "paths": []string{"/tenants/**"},
				"token": map[string]any{"required": true, "issuers": []string{"bench"}}},
			map[string]any{"name": "default"},
		},
	})
	if err != nil {
		return err
	}
	defer pdpSrv.stop()
	opaSrv, err := h.startOPA(ctx, dir, bundleDir)
	if err != nil {
		return err
	}
	defer opaSrv.stop()

	gatewayRequest := scenarioJSON("gateway-request.json")
	gatewayInput := scenarioJSON("gateway-input.json").(map[string]any)
	delete(gatewayInput, "identity")
	pdpBodies := make([][]byte, poolSize)
	opaBodies := make([][]byte, poolSize)
	for i, t := range tokens {
		pdpBodies[i] = mustJSON(map[string]any{"token": t, "http": gatewayRequest})
		opaBodies[i] = mustJSON(map[string]any{"input": map[string]any{"token": t, "request": gatewayInput}})
	}
	pdpLoad := loadTarget{pdpSrv, poolWorkload(pdpSrv.baseURL+"/v1/decision", pdpBodies, checkDecisionAllow)}
	opaLoad := loadTarget{opaSrv, poolWorkload(opaSrv.baseURL+"/v1/data/pdp/bench_jwt/decision", opaBodies, checkDataAllowed)}

	if err := probeOnce(ctx, pdpLoad); err != nil {
		res.skipped = "not yet available: token verification in `pdp serve` (identity issuers configured, " +
			"but a valid ES256 token was " + err.Error() + ")"
		return nil
	}
	if err := probeOnce(ctx, opaLoad); err != nil {
		return fmt.Errorf("OPA baseline probe: %w", err)
	}
	if err := h.warm(ctx, opaLoad, pdpLoad); err != nil {
		return err
	}
	for _, rate := range []int{0, gatewayRate} {
		if err := h.runPair(ctx, res, rate, opaLoad, pdpLoad); err != nil {
			return err
		}
	}
	h.latencyTarget(res, res.find(serverPDP, rateLabel(gatewayRate)))
	return nil
}

// writeJWTBundle writes the shipped bundle plus the OPA-side token check
// and its key data.
func writeJWTBundle(dir string, signer *tokenSigner) error {
	if err := writeShippedBundle(dir); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench_jwt.rego"), scenarioFile("jwt.rego"), 0o644); err != nil {
		return err
	}
	pub := signer.key.PublicKey
	enc := base64.RawURLEncoding
	x, y := make([]byte, 32), make([]byte, 32)
	pub.X.FillBytes(x)
	pub.Y.FillBytes(y)
	jwks := mustJSON(map[string]any{"keys": []any{map[string]any{
		"kty": "EC", "crv": "P-256", "kid": benchKeyID, "alg": "ES256", "use": "sig",
		"x": enc.EncodeToString(x), "y": enc.EncodeToString(y),
	}}})
	data := mustJSON(map[string]any{"jwks": string(jwks), "issuer": benchIssuer, "audience": benchAudience})
	keyDir := filepath.Join(dir, "pdp", "bench_jwt_key")
	if err := os.MkdirAll(keyDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(keyDir, "data.json"), data, 0o644)
}

// poolWorkload posts bodies round robin.
func poolWorkload(url string, bodies [][]byte, check func(int, []byte) error) httpWorkload {
	return httpWorkload{
		next: func(seq uint64) request {
			return request{method: "POST", url: url, header: jsonHeader, body: bodies[seq%uint64(len(bodies))]}
		},
		check: check,
	}
}

// probeOnce sends the first request of t's workload and checks the response.
func probeOnce(ctx context.Context, t loadTarget) error {
	req := t.workload.next(0)
	status, body, err := postJSON(ctx, req.url, req.body)
	if err != nil {
		return err
	}
	return t.workload.check(status, body)
}

// checkProbe probes every target and names the one that failed.
func checkProbe(ctx context.Context, targets ...loadTarget) error {
	for _, t := range targets {
		if err := probeOnce(ctx, t); err != nil {
			return fmt.Errorf("%s probe: %w", t.srv.name, err)
		}
	}
	return nil
}

// latencyTarget checks the p99 target of scenarios 2 to 4 on run r: on
// the PDP's own histogram when it serves one, else on the client-observed
// latency, which bounds the PDP's own time from above.
func (h *harness) latencyTarget(res *scenarioResult, r *runResult) {
	const target = "PDP p99 of its own time < 1 ms at 2,000 decisions/s"
	if r == nil {
		res.unmeasured(target, "no run at 2,000/s")
		return
	}
	if own := r.ownTime(); own != nil && own.total() > 0 {
		within := own.fractionWithin(0.001)
		res.target(target, fmt.Sprintf("%.2f%% of decisions ≤ 1 ms (PDP histogram) at %.0f/s achieved, %d failed",
			100*within, r.throughput(), r.failed), within >= 0.99 && r.failed == 0)
		return
	}
	p99 := r.percentile(0.99)
	res.target(target, fmt.Sprintf("client-observed p99 %s (no PDP histogram served) at %.0f/s achieved, %d failed",
		fmtDur(p99), r.throughput(), r.failed), p99 < time.Millisecond && r.failed == 0)
}

// memoryTarget checks the RSS target on run r.
func (h *harness) memoryTarget(res *scenarioResult, r *runResult) {
	const target = "PDP peak RSS < 100 MB at 10,000 decisions/s"
	if r == nil {
		res.unmeasured(target, "no run at 10,000/s")
		return
	}
	measured := fmt.Sprintf("%s peak RSS at %.0f/s achieved", fmtBytes(r.usage.peakRSS), r.throughput())
	if r.throughput() < 0.95*memoryRate {
		measured += " (below the requested rate, so RSS at the full rate is not shown)"
	}
	res.target(target, measured, r.usage.peakRSS < maxRSS)
}

// auditCheck counts the decision records the PDP wrote in dir and runs
// `pdp audit verify` on them. The PDP must have been stopped, so its last
// checkpoint is written.
func (h *harness) auditCheck(ctx context.Context, res *scenarioResult, dir string) (records int, verified bool) {
	records, err := countDecisionRecords(dir)
	if err != nil {
		res.note("Audit records could not be counted: %v", err)
		return 0, false
	}
	sent := 0
	for _, r := range res.runs {
		if r.server == serverPDP {
			sent += r.requests() - r.failed
		}
	}
	out, err := runCommand(ctx, h.opts.pdpBin, "audit", "verify", dir)
	verified = err == nil
	res.note("Audit: %d decision records on disk for %d answered decisions in the measured runs "+
		"(probes and warm-up add the rest); `pdp audit verify`: %s", records, sent, firstLine(out, err))
	return records, verified
}

// countDecisionRecords counts the JSON Lines records with a decision id in
// the audit files of dir.
func countDecisionRecords(dir string) (int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	if err != nil {
		return 0, err
	}
	count := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		for _, line := range splitLines(data) {
			var rec struct {
				DecisionID string `json:"decision_id"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.DecisionID != "" {
				count++
			}
		}
	}
	return count, nil
}
