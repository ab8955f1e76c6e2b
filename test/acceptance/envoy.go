package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/authgate/pdp/api"
	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/test/gateway/regosource"
)

func init() {
	register("envoy", runEnvoy)
}

// envoyWant is the expected outcome of one input, read by hand from the
// case's expected.txt. Nil or empty fields are not checked.
type envoyWant struct {
	allow bool
	// status is the denied HTTP status.
	status int
	// headers are OK_RESPONSE.headers on allow and DENIED_RESPONSE.headers
	// on deny, compared exactly apart from the PDP's own x-pdp-* headers
	// and the content-type of its JSON error body.
	headers map[string][]string
	// headersToRemove is OK_RESPONSE.headers_to_remove in order, apart from
	// the PDP's identity headers.
	headersToRemove []string
	responseHeaders [][2]string
	querySet        [][2]string
	queryRemove     []string
	body            *string
	metadata        map[string]any
	// compileErrorOK accepts a policy that fails to compile: the bundle is
	// refused, so nothing is allowed.
	compileErrorOK bool
}

// envoyVariant is one input run against one policy file.
type envoyVariant struct {
	input  string
	policy string
	want   envoyWant
}

// envoyCase selects how a corpus case runs: over gRPC (the default), Envoy's
// HTTP ext_authz mode, or OPA's REST API for inputs in another shape.
type envoyCase struct {
	mode     string
	variants []envoyVariant
}

func strp(s string) *string { return &s }

var rbacAllowWant = envoyWant{
	allow:           true,
	headers:         map[string][]string{"foo": {"bar"}, "baz": {"qux"}},
	headersToRemove: []string{"foo", "bar", "baz", "qux"},
	responseHeaders: [][2]string{{"baz", "qux"}, {"foo", "bar"}},
	querySet:        [][2]string{{"foo", "bar"}, {"baz", "qux"}, {"baz", "quux"}},
	queryRemove:     []string{"foo", "bar", "baz", "qux"},
	metadata:        map[string]any{},
}

var primerHeaders = map[string][]string{
	"x-ext-auth-allow": {"yes"}, "x-validated-by": {"security-checkpoint"},
}

// envoyCases holds the expectations of every case in corpus/envoy.
var envoyCases = map[string]envoyCase{
	"authorino-opa-xff-readonly-outside": {mode: "rest", variants: []envoyVariant{
		{input: "input.json", want: envoyWant{allow: false}},
		{input: "input-get-outside.json", want: envoyWant{allow: true}},
		{input: "input-get-inside.json", want: envoyWant{allow: true}},
		{input: "input-post-inside.json", want: envoyWant{allow: true}},
	}},
	"envoy-sandbox-http-service-bearer-table": {mode: "http"},
	"envoy-sandbox-opa-get-only": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{allow: true,
			headers: map[string][]string{"x-current-user": {"OPA"}}}},
		{input: "input-post.json", want: envoyWant{status: 403}},
	}},
	"oep-malformed-json-body-400": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{status: 400}},
	}},
	"oep-object-decision-allow-headers-dynamic-metadata": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{allow: true,
			headers:         map[string][]string{"x": {"hello"}, "y": {"world"}},
			headersToRemove: []string{}, responseHeaders: [][2]string{},
			metadata: map[string]any{"test": "foo", "bar": "baz"}}},
	}},
	"oep-object-decision-deny-custom-status-body": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{status: 301, body: strp("Unauthorized Request"),
			headers:  map[string][]string{"foo": {"bar"}, "baz": {"taz"}},
			metadata: map[string]any{"test": "foo", "bar": "baz"}}},
	}},
	"oep-parsed-body-json-allow": {variants: []envoyVariant{
		{input: "input.json", want: rbacAllowWant},
	}},
	"oep-parsed-body-not-json-deny": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{status: 403,
			headers: map[string][]string{"foo": {"bar"}, "baz": {"qux"}}}},
	}},
	"oep-parsed-path-and-repeated-query-allow": {variants: []envoyVariant{
		{input: "input.json", want: rbacAllowWant},
	}},
	// OPA's plugin returns a gRPC error for both; the PDP returns a
	// CheckResponse denial instead, because Envoy's failure_mode_allow
	// would let an error through.
	"oep-policy-errors-fail-closed": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{status: 403}},
		{input: "input.json", policy: "policy-conflict.rego", want: envoyWant{status: 403, compileErrorOK: true}},
	}},
	"oep-query-parameters-to-set-and-remove": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{allow: true,
			querySet: [][2]string{{"foo", "value1"}, {"bar", "value2"}, {"bar", "value3"}}}},
		{input: "input.json", policy: "policy-remove.rego", want: envoyWant{allow: true,
			queryRemove: []string{"foo", "bar"}}},
	}},
	"oep-rbac-basicauth-allow-result-object": {variants: []envoyVariant{
		{input: "input.json", want: rbacAllowWant},
	}},
	"oep-rbac-basicauth-deny-result-object": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{status: 403, body: strp(""),
			headers: map[string][]string{"foo": {"bar"}, "baz": {"qux"}}, metadata: map[string]any{}}},
	}},
	"oep-request-headers-to-remove": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{allow: true,
			headers:         map[string][]string{"x": {"hello"}, "y": {"world"}},
			headersToRemove: []string{"foo", "bar"}}},
		// OPA's plugin returns a gRPC error here; the PDP denies.
		{input: "input.json", policy: "policy-bad-type.rego", want: envoyWant{status: 403}},
	}},
	"oep-response-headers-to-add-multivalued": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{allow: true, headers: map[string][]string{},
			responseHeaders: [][2]string{{"x", "hello"}, {"x", "world"}}}},
	}},
	"oep-spiffe-source-principal": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{allow: true}},
		{input: "input-deny.json", want: envoyWant{status: 403}},
	}},
	"oep-truncated-body-deny": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{status: 403}},
		{input: "input-allow.json", want: envoyWant{allow: true}},
	}},
	"opa-docs-primer-jwt-hs256-guest-get": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{allow: true}},
	}},
	"opa-docs-primer-status-body-headers-jwt": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{status: 403, body: strp("Unauthorized Request"),
			headers: primerHeaders, metadata: map[string]any{"foo": "bar"}}},
		{input: "input-expired-admin.json", want: envoyWant{status: 401, body: strp("Authentication Failed"),
			headers: primerHeaders}},
	}},
	"opa-docs-standalone-tutorial-jwt-people": {variants: []envoyVariant{
		{input: "input.json", want: envoyWant{allow: true}},
		{input: "input-alice-post.json", want: envoyWant{status: 403}},
		{input: "input-bob-post.json", want: envoyWant{allow: true}},
		{input: "input-bob-post-self.json", want: envoyWant{status: 403}},
	}},
}

func runEnvoy(corpus string, r *report) {
	dir := filepath.Join(corpus, "envoy")
	entries, err := os.ReadDir(dir)
	if err != nil {
		r.fail("envoy", "read corpus folder: %v", err)
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		caseDir := filepath.Join(dir, name)
		if name == "_parser-cases" {
			runParserTables(caseDir, r)
			continue
		}
		c, ok := envoyCases[name]
		if !ok {
			r.fail(name, "no expectation recorded in test/acceptance/envoy.go")
			continue
		}
		switch c.mode {
		case "http":
			runHTTPServiceTable(caseDir, name, r)
		case "rest":
			runRESTCase(caseDir, name, c, r)
		default:
			runGRPCCase(caseDir, name, c, r)
		}
	}
}

// entrypoint reads the decision path from the QUERY line of expected.txt.
func entrypoint(caseDir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(caseDir, "expected.txt"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "QUERY:")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if strings.HasPrefix(f, "data.") {
				return f, nil
			}
		}
	}
	return "", errors.New("expected.txt has no QUERY line with a data path")
}

func runGRPCCase(caseDir, name string, c envoyCase, r *report) {
	entry, err := entrypoint(caseDir)
	if err != nil {
		r.fail(name, "%v", err)
		return
	}
	for _, v := range c.variants {
		policyFile := v.policy
		if policyFile == "" {
			policyFile = "policy.rego"
		}
		label := name + "/" + strings.TrimSuffix(v.input, ".json")
		if v.policy != "" {
			label += "+" + strings.TrimSuffix(v.policy, ".rego")
		}
		r.check(label, runGRPCVariant(caseDir, entry, policyFile, v))
	}
}

func runGRPCVariant(caseDir, entry, policyFile string, v envoyVariant) error {
	src, err := os.ReadFile(filepath.Join(caseDir, policyFile))
	if err != nil {
		return err
	}
	policy, err := regosource.Compile(context.Background(), map[string]string{policyFile: string(src)}, nil, entry)
	if err != nil {
		if v.want.compileErrorOK {
			return nil
		}
		return fmt.Errorf("compile %s: %w", policyFile, err)
	}
	raw, err := os.ReadFile(filepath.Join(caseDir, v.input))
	if err != nil {
		return err
	}
	var cr authv3.CheckRequest
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, &cr); err != nil {
		return fmt.Errorf("decode %s: %w", v.input, err)
	}
	resp, err := checkOverGRPC(policy, &cr)
	if err != nil {
		return err
	}
	return compareCheck(resp, v.want)
}

// checkOverGRPC serves the policy with NewGRPCServer on a loopback
// listener and sends one Check from a client built from Envoy's protos.
func checkOverGRPC(policy pdp.Policy, cr *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	engine, _, err := regosource.NewEngine(policy, pdp.Options{})
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := api.NewGRPCServer(api.GRPCOptions{Engine: engine})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return authv3.NewAuthorizationClient(conn).Check(ctx, cr)
}

// pdpHeader reports whether a header is one the PDP adds by itself.
func pdpHeader(name string) bool {
	return strings.HasPrefix(strings.ToLower(name), "x-pdp-")
}

func compareCheck(resp *authv3.CheckResponse, want envoyWant) error {
	code := codes.Code(resp.GetStatus().GetCode())
	if want.allow {
		ok := resp.GetOkResponse()
		if code != codes.OK || ok == nil {
			return fmt.Errorf("got status %s with denied status %d, want OK",
				code, resp.GetDeniedResponse().GetStatus().GetCode())
		}
		return compareOK(ok, resp, want)
	}
	denied := resp.GetDeniedResponse()
	if code != codes.PermissionDenied || denied == nil {
		return fmt.Errorf("got status %s, want PERMISSION_DENIED with a denied response", code)
	}
	if got := int(denied.GetStatus().GetCode()); want.status != 0 && got != want.status {
		return fmt.Errorf("denied status = %d, want %d", got, want.status)
	}
	if want.body != nil && denied.GetBody() != *want.body {
		return fmt.Errorf("denied body = %q, want %q", denied.GetBody(), *want.body)
	}
	if want.headers != nil {
		got := headerMap(denied.GetHeaders(), "content-type")
		if !reflect.DeepEqual(got, want.headers) {
			return fmt.Errorf("denied headers = %v, want %v", got, want.headers)
		}
	}
	return compareMetadata(resp, want)
}

func compareOK(ok *authv3.OkHttpResponse, resp *authv3.CheckResponse, want envoyWant) error {
	if want.headers != nil {
		if got := headerMap(ok.GetHeaders()); !reflect.DeepEqual(got, want.headers) {
			return fmt.Errorf("headers = %v, want %v", got, want.headers)
		}
	}
	if want.headersToRemove != nil {
		got := []string{}
		for _, h := range ok.GetHeadersToRemove() {
			if !pdpHeader(h) {
				got = append(got, h)
			}
		}
		if !reflect.DeepEqual(got, want.headersToRemove) {
			return fmt.Errorf("headers_to_remove = %v, want %v", got, want.headersToRemove)
		}
	}
	if want.responseHeaders != nil {
		got := [][2]string{}
		for _, h := range ok.GetResponseHeadersToAdd() {
			got = append(got, [2]string{h.GetHeader().GetKey(), h.GetHeader().GetValue()})
		}
		if !reflect.DeepEqual(got, want.responseHeaders) {
			return fmt.Errorf("response_headers_to_add = %v, want %v", got, want.responseHeaders)
		}
	}
	if want.querySet != nil {
		got := [][2]string{}
		for _, q := range ok.GetQueryParametersToSet() {
			got = append(got, [2]string{q.GetKey(), q.GetValue()})
		}
		if !samePairs(got, want.querySet) {
			return fmt.Errorf("query_parameters_to_set = %v, want %v (any order)", got, want.querySet)
		}
	}
	if want.queryRemove != nil && !reflect.DeepEqual(ok.GetQueryParametersToRemove(), want.queryRemove) {
		return fmt.Errorf("query_parameters_to_remove = %v, want %v", ok.GetQueryParametersToRemove(), want.queryRemove)
	}
	return compareMetadata(resp, want)
}

// compareMetadata checks that the dynamic metadata holds exactly the
// expected fields plus decision_id.
func compareMetadata(resp *authv3.CheckResponse, want envoyWant) error {
	if want.metadata == nil {
		return nil
	}
	got := resp.GetDynamicMetadata().AsMap()
	if id, _ := got["decision_id"].(string); id == "" {
		return errors.New("dynamic metadata has no decision_id")
	}
	delete(got, "decision_id")
	if !reflect.DeepEqual(got, want.metadata) {
		return fmt.Errorf("dynamic metadata = %v, want %v plus decision_id", got, want.metadata)
	}
	return nil
}

// headerMap collects header options by name, leaving out the PDP's own
// headers and the names in skip.
func headerMap(opts []*corev3.HeaderValueOption, skip ...string) map[string][]string {
	out := map[string][]string{}
	for _, o := range opts {
		key := o.GetHeader().GetKey()
		if pdpHeader(key) || contains(skip, key) {
			continue
		}
		out[key] = append(out[key], o.GetHeader().GetValue())
	}
	return out
}

func contains(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}

func samePairs(a, b [][2]string) bool {
	key := func(p [][2]string) []string {
		out := make([]string, len(p))
		for i, kv := range p {
			out[i] = kv[0] + "=" + kv[1]
		}
		sort.Strings(out)
		return out
	}
	return reflect.DeepEqual(key(a), key(b))
}

// startHTTPAPI serves the policy with the PDP's HTTP API on loopback.
func startHTTPAPI(policy pdp.Policy) (*httptest.Server, error) {
	engine, _, err := regosource.NewEngine(policy, pdp.Options{})
	if err != nil {
		return nil, err
	}
	return httptest.NewServer(api.NewServer(api.Options{Engine: engine}).Handler()), nil
}

// runHTTPServiceTable replays the requests of Envoy's HTTP-service sandbox
// through the PDP's HTTP ext_authz mode.
func runHTTPServiceTable(caseDir, name string, r *report) {
	var table struct {
		Requests []struct {
			Name       string            `json:"name"`
			Method     string            `json:"method"`
			Path       string            `json:"path"`
			Headers    map[string]string `json:"headers"`
			ClientSees struct {
				Status int `json:"status"`
			} `json:"client_sees"`
			Upstream map[string]string `json:"upstream_receives_header"`
		} `json:"requests"`
	}
	if err := readJSON(filepath.Join(caseDir, "input.json"), &table); err != nil {
		r.fail(name, "%v", err)
		return
	}
	src, err := os.ReadFile(filepath.Join(caseDir, "policy.rego"))
	if err != nil {
		r.fail(name, "%v", err)
		return
	}
	entry, err := entrypoint(caseDir)
	if err != nil {
		entry = "data.envoy.authz.allow"
	}
	policy, err := regosource.Compile(context.Background(), map[string]string{"policy.rego": string(src)}, nil, entry)
	if err != nil {
		r.fail(name, "compile: %v", err)
		return
	}
	srv, err := startHTTPAPI(policy)
	if err != nil {
		r.fail(name, "%v", err)
		return
	}
	defer srv.Close()

	for _, row := range table.Requests {
		r.check(name+"/"+row.Name, func() error {
			req, err := http.NewRequest(row.Method, srv.URL+api.DefaultExtAuthzPrefix+row.Path, nil)
			if err != nil {
				return err
			}
			for k, v := range row.Headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != row.ClientSees.Status {
				return fmt.Errorf("status = %d, want %d", resp.StatusCode, row.ClientSees.Status)
			}
			for k, v := range row.Upstream {
				if got := resp.Header.Get(k); got != v {
					return fmt.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			return nil
		}())
	}
}

// runRESTCase evaluates inputs of another input shape (Authorino's)
// through the PDP's OPA REST API. Authorino adds the package line, so the
// harness does too.
func runRESTCase(caseDir, name string, c envoyCase, r *report) {
	src, err := os.ReadFile(filepath.Join(caseDir, "policy.rego"))
	if err != nil {
		r.fail(name, "%v", err)
		return
	}
	module := "package authorino\n\n" + string(src)
	policy, err := regosource.Compile(context.Background(), map[string]string{"policy.rego": module}, nil,
		"data.authorino.allow")
	if err != nil {
		r.fail(name, "compile: %v", err)
		return
	}
	srv, err := startHTTPAPI(policy)
	if err != nil {
		r.fail(name, "%v", err)
		return
	}
	defer srv.Close()

	for _, v := range c.variants {
		r.check(name+"/"+strings.TrimSuffix(v.input, ".json"), func() error {
			raw, err := os.ReadFile(filepath.Join(caseDir, v.input))
			if err != nil {
				return err
			}
			body := append(append([]byte(`{"input":`), raw...), '}')
			resp, err := http.Post(srv.URL+"/v1/data/authorino/allow", "application/json", bytes.NewReader(body))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var out struct {
				Result *bool `json:"result"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return err
			}
			got := out.Result != nil && *out.Result
			if got != v.want.allow {
				return fmt.Errorf("allow = %v, want %v", got, v.want.allow)
			}
			return nil
		}())
	}
}

// echoPolicy returns the parsed fields of the input as dynamic metadata.
const echoPolicy = `package echo

result := {"allowed": true, "dynamic_metadata": {
	"parsed_path": object.get(input, "parsed_path", null),
	"parsed_query": object.get(input, "parsed_query", null),
	"parsed_body": object.get(input, "parsed_body", null),
	"truncated_body": object.get(input, "truncated_body", null),
}}
`

// runParserTables checks parsed_path, parsed_query, parsed_body and
// truncated_body against the tables from OPA's Envoy plugin, end to end
// over gRPC with a policy that echoes them.
func runParserTables(dir string, r *report) {
	policy := regosource.MustCompile(echoPolicy, "data.echo.result")

	var paths struct {
		Cases []struct {
			Path        string         `json:"path"`
			ParsedPath  []any          `json:"parsed_path"`
			ParsedQuery map[string]any `json:"parsed_query"`
		} `json:"cases"`
	}
	if err := readJSON(filepath.Join(dir, "parsed_path_query.json"), &paths); err != nil {
		r.fail("parsed_path_query", "%v", err)
	}
	for _, row := range paths.Cases {
		r.check("parsed_path_query "+row.Path, func() error {
			cr := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: row.Path},
			}}}
			md, err := echoCheck(policy, cr)
			if err != nil {
				return err
			}
			if err := sameJSON("parsed_path", md["parsed_path"], row.ParsedPath); err != nil {
				return err
			}
			return sameJSON("parsed_query", md["parsed_query"], row.ParsedQuery)
		}())
	}

	var bodies struct {
		ErrorCase struct {
			Name    string          `json:"name"`
			Request json.RawMessage `json:"request"`
		} `json:"error_case"`
		Cases []struct {
			Name          string          `json:"name"`
			Request       json.RawMessage `json:"request"`
			ParsedBody    any             `json:"parsed_body"`
			TruncatedBody bool            `json:"truncated_body"`
		} `json:"cases"`
	}
	if err := readJSON(filepath.Join(dir, "parsed_body.json"), &bodies); err != nil {
		r.fail("parsed_body", "%v", err)
		return
	}
	for _, row := range bodies.Cases {
		r.check("parsed_body "+row.Name, func() error {
			var cr authv3.CheckRequest
			if err := protojson.Unmarshal(row.Request, &cr); err != nil {
				return err
			}
			md, err := echoCheck(policy, &cr)
			if err != nil {
				return err
			}
			if err := sameJSON("parsed_body", md["parsed_body"], row.ParsedBody); err != nil {
				return err
			}
			return sameJSON("truncated_body", md["truncated_body"], row.TruncatedBody)
		}())
	}
	r.check("parsed_body "+bodies.ErrorCase.Name, func() error {
		var cr authv3.CheckRequest
		if err := protojson.Unmarshal(bodies.ErrorCase.Request, &cr); err != nil {
			return err
		}
		resp, err := checkOverGRPC(policy, &cr)
		if err != nil {
			return err
		}
		return compareCheck(resp, envoyWant{status: 400})
	}())
}

func echoCheck(policy pdp.Policy, cr *authv3.CheckRequest) (map[string]any, error) {
	resp, err := checkOverGRPC(policy, cr)
	if err != nil {
		return nil, err
	}
	if resp.GetOkResponse() == nil {
		return nil, fmt.Errorf("denied with status %d: %s", resp.GetDeniedResponse().GetStatus().GetCode(),
			resp.GetDeniedResponse().GetBody())
	}
	return resp.GetDynamicMetadata().AsMap(), nil
}

// sameJSON compares two values by their JSON encoding, so 42 and 42.0 and
// []string and []any are equal.
func sameJSON(field string, got, want any) error {
	norm := func(v any) (any, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		var out any
		return out, json.Unmarshal(b, &out)
	}
	g, err := norm(got)
	if err != nil {
		return err
	}
	w, err := norm(want)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(g, w) {
		return fmt.Errorf("%s = %v, want %v", field, g, w)
	}
	return nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}
