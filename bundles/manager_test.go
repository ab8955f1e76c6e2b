package bundles

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/open-policy-agent/opa/v1/ast"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authgate/pdp/policies"
)

var noWatch = func() *bool { b := false; return &b }()

func TestLoadSources(t *testing.T) {
	tarball := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(tarball, tarGz(t, policyFiles("tar-1")), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cfg      Config
		embedded bool
		revision string
	}{
		{name: "directory", cfg: Config{Path: bundleDir(t, policyFiles("dir-1"))}, revision: "dir-1"},
		{name: "tarball", cfg: Config{Path: tarball}, revision: "tar-1"},
		{name: "embedded", embedded: true, revision: "2026-01-15.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewManager(tc.cfg, Options{Embedded: embeddedIf(tc.embedded), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Stop()
			if m.Active() != nil {
				t.Fatal("Active before Start is not nil")
			}
			if err := m.Ready(); err == nil {
				t.Fatal("Ready before Start returned nil")
			}
			if err := m.Start(context.Background()); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if err := m.Ready(); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			if got := m.Active().Revision(); got != tc.revision {
				t.Errorf("revision = %q, want %q", got, tc.revision)
			}
			if got := m.Revision(); got != tc.revision {
				t.Errorf("Manager.Revision = %q, want %q", got, tc.revision)
			}
			at, err := m.LastActivation()
			if err != nil || at.IsZero() {
				t.Errorf("LastActivation = %v, %v; want a time and nil", at, err)
			}
		})
	}
}

func embeddedIf(yes bool) fs.FS {
	if yes {
		return policies.Bundle
	}
	return nil
}

func TestEvalResults(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string
		entrypoint string
		input      map[string]any
		want       string
		defined    bool
		logged     string
	}{
		{
			name:    "object decision",
			files:   policyFiles("r1"),
			input:   map[string]any{"user": "alice"},
			want:    `{"allowed":true,"headers":{"x-rev":"r1"},"http_status":200}`,
			defined: true,
			logged:  "entrypoint=data.pdp.authz.decision",
		},
		{
			name: "boolean allow fallback",
			files: map[string]string{"p.rego": `package pdp.authz
allow if input.user == "alice"`},
			input:   map[string]any{"user": "alice"},
			want:    `true`,
			defined: true,
			logged:  "entrypoint=data.pdp.authz.allow configured_entrypoint=data.pdp.authz.decision",
		},
		{
			name: "undefined result",
			files: map[string]string{"p.rego": `package pdp.authz
allow if input.user == "alice"`},
			input:   map[string]any{"user": "bob"},
			defined: false,
		},
		{
			name: "custom entrypoint",
			files: map[string]string{"p.rego": `package gw
verdict := {"allowed": input.n > 2, "http_status": 418}`},
			entrypoint: "data.gw.verdict",
			input:      map[string]any{"n": 3},
			want:       `{"allowed":true,"http_status":418}`,
			defined:    true,
		},
		{
			name: "struct input",
			files: map[string]string{"p.rego": `package pdp.authz
allow if input.identity.scopes[_] == "read"`},
			input: map[string]any{"identity": &struct {
				Scopes []string `json:"scopes"`
			}{Scopes: []string{"read"}}},
			want:    `true`,
			defined: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, logs := newTestManager(t, Config{Path: bundleDir(t, tc.files), Entrypoint: tc.entrypoint, Watch: noWatch})
			result, defined, err := m.Active().Eval(context.Background(), ast.MustInterfaceToValue(tc.input))
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if defined != tc.defined {
				t.Fatalf("defined = %v, want %v", defined, tc.defined)
			}
			if tc.defined {
				got, _ := json.Marshal(result)
				if string(got) != tc.want {
					t.Errorf("result = %s, want %s", got, tc.want)
				}
			}
			if tc.logged != "" && !strings.Contains(logs.String(), tc.logged) {
				t.Errorf("log lacks %q:\n%s", tc.logged, logs)
			}
		})
	}
}

func TestEvalNumbersAreJSONNumbers(t *testing.T) {
	m, _ := newTestManager(t, Config{Path: bundleDir(t, policyFiles("n1")), Watch: noWatch})
	result, _, err := m.Active().Eval(context.Background(), ast.MustInterfaceToValue(map[string]any{"user": "alice"}))
	if err != nil {
		t.Fatal(err)
	}
	status := result.(map[string]any)["http_status"]
	if n, ok := status.(json.Number); !ok || n.String() != "200" {
		t.Errorf("http_status = %#v, want json.Number 200", status)
	}
}

func TestStartRejectsBrokenBundle(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		cfg   Config
		want  []string
	}{
		{
			name:  "missing entrypoint",
			files: map[string]string{"p.rego": "package pdp.authz\n\nother := true\n"},
			want:  []string{"missing entrypoint", "data.pdp.authz.decision", "data.pdp.authz.allow"},
		},
		{
			name:  "rego syntax error",
			files: map[string]string{"pdp/policy.rego": "package pdp.authz\n\nallow if {\n\tinput.x ==\n"},
			want:  []string{"pdp/policy.rego:", "rego_parse_error"},
		},
		{
			name:  "rego compile error",
			files: map[string]string{"p.rego": "package pdp.authz\n\nallow if {\n\tundefined_function(1)\n}\n"},
			want:  []string{"p.rego:4", "rego_type_error"},
		},
		{
			name:  "overlapping roots",
			files: map[string]string{".manifest": `{"roots": ["pdp", "pdp/authz"]}`, "p.rego": "package pdp.authz\nallow := true"},
			want:  []string{"manifest has overlapped roots"},
		},
		{
			name:  "package outside roots",
			files: map[string]string{".manifest": `{"roots": ["pdp"]}`, "p.rego": "package other\nallow := true"},
			want:  []string{"manifest roots [pdp] do not permit 'package other'"},
		},
		{
			name:  "data outside roots",
			files: map[string]string{".manifest": `{"roots": ["pdp"]}`, "x/data.json": `{"a": 1}`, "p.rego": "package pdp.authz\nallow := true"},
			want:  []string{"do not permit data at path '/x'"},
		},
		{
			name:  "invalid data json",
			files: map[string]string{"data.json": `{"pdp": `, "p.rego": "package pdp.authz\nallow := true"},
			want:  []string{"/data.json"},
		},
		{
			name:  "rule conflicts with data",
			files: map[string]string{"pdp/authz/data.json": `{"allow": true}`, "p.rego": "package pdp.authz\nallow := true"},
			want:  []string{"conflict"},
		},
		{
			name: "unsigned bundle with signing required",
			files: map[string]string{
				"p.rego": "package pdp.authz\nallow := true",
			},
			cfg:  Config{Signing: SigningConfig{Required: true, Keys: []KeyConfig{{ID: "k1", Algorithm: "HS256", Key: "secret"}}}},
			want: []string{"bundle missing .signatures.json file"},
		},
		{
			name: "signed bundle without keys",
			files: map[string]string{
				".signatures.json": `{"signatures": ["e30.e30.e30"]}`,
				"p.rego":           "package pdp.authz\nallow := true",
			},
			want: []string{"verification key not provided"},
		},
		{
			name:  "delta bundle",
			files: map[string]string{"patch.json": `{"data": [{"op": "add", "path": "/a", "value": 1}]}`, ".manifest": `{"roots": ["a"]}`},
			want:  []string{"delta bundles are not supported"},
		},
		{
			name:  "file over size limit",
			files: map[string]string{"data.json": `{"pdp": {"x": "0123456789"}}`, "p.rego": "package pdp.authz\nallow := true"},
			cfg:   Config{MaxSize: 8},
			want:  []string{"exceeds configured size_limit_bytes (8 bytes)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Path = bundleDir(t, tc.files)
			cfg.Watch = noWatch
			m, logs, err := startTestManager(t, cfg)
			if err == nil {
				t.Fatal("Start returned nil for a broken bundle")
			}
			if !containsAll(err.Error(), tc.want...) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			if m.Active() != nil {
				t.Error("a broken bundle became active")
			}
			if !strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("no error logged:\n%s", logs)
			}
			if _, last := m.LastActivation(); last == nil {
				t.Error("LastActivation error is nil after a rejection")
			}
		})
	}
}

func TestStartErrorNamesFileAndLine(t *testing.T) {
	dir := bundleDir(t, map[string]string{"authz/policy.rego": "package pdp.authz\n\nallow if {\n\tinput.x ==\n}\n"})
	_, logs, err := startTestManager(t, Config{Path: dir, Watch: noWatch})
	if err == nil {
		t.Fatal("Start returned nil")
	}
	want := filepath.Join(dir, "authz/policy.rego") + ":5"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
	if !strings.Contains(logs.String(), "line=5") {
		t.Errorf("log lacks line=5:\n%s", logs)
	}
}

func TestReloadKeepsLastGood(t *testing.T) {
	dir := bundleDir(t, policyFiles("good-1"))
	m, logs := newTestManager(t, Config{Path: dir, Watch: noWatch})
	before := m.Active()

	writeFiles(t, dir, map[string]string{"pdp/authz/policy.rego": "package pdp.authz\n\ndecision := {\n"})
	err := m.Reload(context.Background())
	if err == nil {
		t.Fatal("Reload of a broken bundle returned nil")
	}
	if m.Active() != before {
		t.Error("active revision changed after a rejected reload")
	}
	if got := m.Revision(); got != "good-1" {
		t.Errorf("revision = %q, want good-1", got)
	}
	if _, last := m.LastActivation(); last == nil {
		t.Error("LastActivation error is nil after a rejected reload")
	}
	log := logs.String()
	if !containsAll(log, "level=WARN", "bundle rejected", "bundle_revision=good-1", "pdp/authz/policy.rego:4", "line=4") {
		t.Errorf("rejection log lacks level, revision or file:line:\n%s", log)
	}
	result, _, err := m.Active().Eval(context.Background(), ast.MustInterfaceToValue(map[string]any{"user": "alice"}))
	if err != nil || result.(map[string]any)["allowed"] != true {
		t.Errorf("last good revision Eval = %v, %v", result, err)
	}

	writeFiles(t, dir, policyFiles("good-2"))
	if err := m.Reload(context.Background()); err != nil {
		t.Fatalf("Reload of a fixed bundle: %v", err)
	}
	if got := m.Revision(); got != "good-2" {
		t.Errorf("revision after fix = %q, want good-2", got)
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

func TestRevisionWithoutManifestIsContentHash(t *testing.T) {
	files := map[string]string{"p.rego": "package pdp.authz\nallow := true\n"}
	dir := bundleDir(t, files)
	m, _ := newTestManager(t, Config{Path: dir, Watch: noWatch})
	first := m.Revision()
	if !strings.HasPrefix(first, "sha256-") || len(first) != len("sha256-")+12 {
		t.Fatalf("revision = %q, want sha256- and 12 hex digits", first)
	}
	writeFiles(t, dir, map[string]string{"p.rego": "package pdp.authz\nallow := false\n"})
	if err := m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.Revision() == first {
		t.Error("changed content kept the same revision")
	}
}

func TestWatchReloadsDirectory(t *testing.T) {
	dir := bundleDir(t, policyFiles("w1"))
	m, _ := newTestManager(t, Config{Path: dir})

	// A direct write in a subdirectory.
	writeFiles(t, dir, policyFiles("w2"))
	waitFor(t, "revision w2", func() bool { return m.Revision() == "w2" })

	// An editor-style save: write a temporary file, rename it over the
	// manifest.
	tmp := filepath.Join(dir, ".manifest.tmp")
	if err := os.WriteFile(tmp, []byte(`{"revision": "w3", "roots": ["pdp"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ".manifest")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revision w3", func() bool { return m.Revision() == "w3" })

	// A new subdirectory is watched too.
	writeFiles(t, dir, map[string]string{"pdp/extra/x.rego": "package pdp.extra\nx := 1\n"})
	waitFor(t, "new subdirectory loaded", func() bool {
		v, ok, _ := m.Active().Query(context.Background(), "pdp/extra/x", nil)
		return ok && v != nil
	})
	writeFiles(t, dir, map[string]string{"pdp/extra/x.rego": "package pdp.extra\nx := 2\n"})
	waitFor(t, "change in new subdirectory", func() bool {
		v, _, _ := m.Active().Query(context.Background(), "pdp/extra/x", nil)
		return v == json.Number("2")
	})
}

func TestWatchReloadsTarball(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bundle.tar.gz")
	if err := os.WriteFile(path, tarGz(t, policyFiles("t1")), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _ := newTestManager(t, Config{Path: path})

	tmp := filepath.Join(dir, "bundle.tar.gz.new")
	if err := os.WriteFile(tmp, tarGz(t, policyFiles("t2")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revision t2", func() bool { return m.Revision() == "t2" })

	if err := os.WriteFile(path, tarGz(t, policyFiles("t3")), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revision t3", func() bool { return m.Revision() == "t3" })
}

func TestQueryDataPaths(t *testing.T) {
	files := policyFiles("q1")
	files["pdp/tables/data.json"] = `{"limits": {"max": 5}, "list": [10, 20, 30], "named": {"1": "string key"}}`
	files["pdp/nums/n.rego"] = "package pdp.nums\n\nkeys := {1: \"number key\"}\n\narr := [\"a\", \"b\"]\n"
	m, _ := newTestManager(t, Config{Path: bundleDir(t, files), Watch: noWatch})
	p := m.Active()
	tests := []struct {
		name    string
		path    string
		input   any
		want    string
		defined bool
	}{
		{name: "data document", path: "pdp/tables/limits", want: `{"max":5}`, defined: true},
		{name: "rule with input", path: "/pdp/authz/decision/allowed", input: map[string]any{"user": "alice"}, want: `true`, defined: true},
		{name: "rule without input", path: "pdp/authz/decision/allowed", want: `false`, defined: true},
		{name: "undefined path", path: "pdp/nothing", defined: false},
		{name: "segment needing quotes", path: "pdp/tables/not a var", defined: false},
		{name: "integer segment indexes an array", path: "pdp/tables/list/1", want: `20`, defined: true},
		{name: "integer segment indexes a rule's array", path: "pdp/nums/arr/1", want: `"b"`, defined: true},
		{name: "integer segment is a number key", path: "pdp/nums/keys/1", want: `"number key"`, defined: true},
		{name: "integer segment reads a data document's key", path: "pdp/tables/named/1", want: `"string key"`, defined: true},
		{name: "empty segments are skipped", path: "pdp//tables///limits/max", want: `5`, defined: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // the second run uses the cached prepared query
				result, defined, err := p.Query(context.Background(), tc.path, tc.input)
				if err != nil {
					t.Fatalf("Query: %v", err)
				}
				if defined != tc.defined {
					t.Fatalf("defined = %v, want %v", defined, tc.defined)
				}
				if got, _ := json.Marshal(result); tc.defined && string(got) != tc.want {
					t.Errorf("result = %s, want %s", got, tc.want)
				}
			}
		})
	}
}

func TestEvalHonoursContext(t *testing.T) {
	files := map[string]string{"p.rego": `package pdp.authz
allow if {
	count([x | some x in numbers.range(1, 100000000); x % 7 == 0]) > 0
}`}
	m, _ := newTestManager(t, Config{Path: bundleDir(t, files), Watch: noWatch})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := m.Active().Eval(ctx, ast.NewObject())
	if err == nil {
		t.Fatal("Eval past its deadline returned nil")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Eval took %v after a 50ms deadline", elapsed)
	}

	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if _, _, err := m.Active().Query(cancelled, "pdp/authz/allow", nil); err == nil {
		t.Error("Query with a cancelled context returned nil")
	}
}

func TestConcurrentEvalDuringReloads(t *testing.T) {
	dir := bundleDir(t, policyFiles("c0"))
	m, _ := newTestManager(t, Config{Path: dir, Watch: noWatch})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				p := m.Active()
				result, _, err := p.Eval(context.Background(), ast.MustInterfaceToValue(map[string]any{"user": "alice"}))
				if err != nil {
					errs <- err
					return
				}
				// The result comes from the revision loaded above, even if a
				// newer one was published meanwhile.
				header := result.(map[string]any)["headers"].(map[string]any)["x-rev"]
				if header != p.Revision() {
					errs <- errors.New("result of another revision: " + header.(string) + " from " + p.Revision())
					return
				}
				if _, _, err := p.Query(context.Background(), "pdp/authz/decision", map[string]any{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 1; i <= 20; i++ {
		rev := "c" + string(rune('a'+i))
		writeFiles(t, dir, policyFiles(rev))
		if err := m.Reload(context.Background()); err != nil {
			t.Fatalf("Reload %d: %v", i, err)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStopIsIdempotent(t *testing.T) {
	m, _ := newTestManager(t, Config{Path: bundleDir(t, policyFiles("s1"))})
	m.Stop()
	m.Stop()
	if m.Active() == nil {
		t.Error("Stop removed the active revision")
	}
	unstarted, err := NewManager(Config{Path: t.TempDir()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	unstarted.Stop()
	unstarted.Stop()
}
