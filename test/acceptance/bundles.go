package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/open-policy-agent/opa/v1/ast"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/authgate/pdp/bundles"
)

func init() {
	register("bundles", runBundleSuite)
}

// bundleCase is one bundle of CORPUS/bundles with the product settings its
// expected.txt and verification.yaml describe.
type bundleCase struct {
	name string
	// path is the bundle.tar.gz or bundle directory to load.
	path    string
	signing bundles.SigningConfig
	maxSize int64
	// baseDir is the bundle.base_dir setting, "" for none.
	baseDir string
	// loads is true when the bundle must be accepted.
	loads bool
	// errorText must appear in the rejection error when set.
	errorText string
	// entrypoint and want check a decision of a loaded bundle.
	entrypoint string
	want       any
	// wantData maps top-level data keys of a loaded bundle to their
	// expected documents.
	wantData map[string]any
	// wantRevision checks the revision of a loaded bundle.
	wantRevision string
}

// runBundleSuite loads every bundle of CORPUS/bundles with the product's
// bundle manager and checks that it is accepted or rejected as its
// expected.txt says.
func runBundleSuite(corpus string, r *report) {
	root := filepath.Join(corpus, "bundles")
	cases, err := bundleCases(root)
	if err != nil {
		r.fail("setup", "%v", err)
		return
	}
	for _, c := range cases {
		r.check(c.name, c.run())
	}
	runSignatureVectors(root, r)
}

// bundleCases builds the case list. Most cases follow from expected.txt;
// the cases whose expectation depends on an option the product does not
// offer are adjusted below, each with the reason.
func bundleCases(root string) ([]bundleCase, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == "expected.txt" {
			if _, err := os.Stat(filepath.Join(filepath.Dir(path), "bundle.tar.gz")); err == nil {
				dirs = append(dirs, filepath.Dir(path))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(dirs)

	var cases []bundleCase
	for _, dir := range dirs {
		c, err := newBundleCase(root, dir)
		if err != nil {
			return nil, err
		}
		cases = append(cases, adjustBundleCase(c)...)
	}
	return cases, nil
}

var (
	expectedLine = regexp.MustCompile(`^EXPECTED[^:]*: (LOADS|REJECTED)`)
	errorLine    = regexp.MustCompile(`^ERROR[^:]*: (.+)$`)
	queryLine    = regexp.MustCompile(`^QUERY CHECK: (data\.[\w.]+) == (true|false)`)
)

func newBundleCase(root, dir string) (bundleCase, error) {
	name, _ := filepath.Rel(root, dir)
	c := bundleCase{name: name, path: filepath.Join(dir, "bundle.tar.gz")}

	f, err := os.Open(filepath.Join(dir, "expected.txt"))
	if err != nil {
		return c, err
	}
	defer f.Close()
	seenExpected := false
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := scanner.Text()
		if m := expectedLine.FindStringSubmatch(line); m != nil && !seenExpected {
			c.loads = m[1] == "LOADS"
			seenExpected = true
		}
		if m := errorLine.FindStringSubmatch(line); m != nil && c.errorText == "" {
			c.errorText = strings.TrimSpace(m[1])
		}
		if m := queryLine.FindStringSubmatch(line); m != nil {
			c.entrypoint, c.want = m[1], m[2] == "true"
		}
	}
	if err := scanner.Err(); err != nil {
		return c, err
	}
	if !seenExpected {
		return c, fmt.Errorf("%s: no EXPECTED line", name)
	}
	if strings.HasPrefix(c.errorText, "load error: ...") {
		// A quotation from an issue, not an exact message.
		c.errorText = "not included in bundle signature"
	}

	c.signing, err = readVerification(filepath.Join(dir, "verification.yaml"))
	return c, err
}

// adjustBundleCase applies what expected.txt states in prose.
func adjustBundleCase(c bundleCase) []bundleCase {
	switch c.name {
	case "malformed/size-limit-4-bytes":
		c.maxSize = 4
		c.errorText = "(4 bytes)"
	case "signatures-file-empty-or-unconfigured":
		// Variant 1: no verification configured. Variant 2: verification
		// configured, which the product expresses with a key.
		unconfigured := c
		unconfigured.name += "/unconfigured"
		unconfigured.errorText = "verification key not provided"
		c.name += "/configured"
		c.signing = hs256Signing()
		c.errorText = ".signatures.json: missing JWT (expected exactly one)"
		return []bundleCase{unconfigured, c}
	case "signing-required-but-unsigned":
		// The corpus configures key id "somekey" without keys. The product
		// expresses "signature required" as required: true with a key.
		required := c
		required.name += "/required"
		required.signing = hs256Signing()
		required.signing.Required = true
		c.name += "/no_signing"
		c.signing = bundles.SigningConfig{}
		c.loads, c.errorText = true, ""
		return []bundleCase{required, c}
	case "signed-bad-digests-skip-verification":
		// The product has no option to skip verification, so only the
		// "verification enabled" half of the case applies.
		c.name += "/verified"
		c.loads, c.errorText = false, "digest mismatch"
	case "signed-hs256-valid-basedir-foo-bar":
		atRoot := c
		atRoot.name += "/at_root"
		atRoot.loads, atRoot.errorText = false, "not included in bundle signature"
		c.name += "/base_dir"
		c.baseDir = "/foo/bar"
		return []bundleCase{atRoot, c}
	case "signed-hs256-exclude-files":
		c.entrypoint, c.want = "data.a.b.c", []any{json.Number("1"), json.Number("2"), json.Number("3")}
	case "unsigned-data-merge-json-yaml":
		c.entrypoint = "data.a.b.c"
		c.wantData = map[string]any{
			"a": map[string]any{"b": map[string]any{
				"c": []any{json.Number("1"), json.Number("2"), json.Number("3")},
				"d": true, "g": json.Number("1"), "y": map[string]any{"foo": json.Number("1")}, "z": true,
			}},
			"x": map[string]any{"y": true},
		}
	case "docs-manifest-roots-revision":
		c.wantRevision = "7864d60dd78d748dbce54b569e939f5b0dc07486"
	}
	return []bundleCase{c}
}

func hs256Signing() bundles.SigningConfig {
	return bundles.SigningConfig{Keys: []bundles.KeyConfig{{ID: "foo", Algorithm: "HS256", Key: "secret"}}}
}

// readVerification maps an OPA configuration fragment (keys plus one
// bundle's signing block) to the product's signing settings. A missing
// file means no verification.
func readVerification(path string) (bundles.SigningConfig, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return bundles.SigningConfig{}, nil
	}
	if err != nil {
		return bundles.SigningConfig{}, err
	}
	var doc struct {
		Keys map[string]struct {
			Algorithm string `yaml:"algorithm"`
			Key       string `yaml:"key"`
		} `yaml:"keys"`
		Bundles map[string]struct {
			Signing struct {
				KeyID        string   `yaml:"keyid"`
				Scope        string   `yaml:"scope"`
				ExcludeFiles []string `yaml:"exclude_files"`
			} `yaml:"signing"`
		} `yaml:"bundles"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return bundles.SigningConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	var s bundles.SigningConfig
	for id, k := range doc.Keys {
		s.Keys = append(s.Keys, bundles.KeyConfig{ID: id, Algorithm: k.Algorithm, Key: k.Key})
	}
	for _, b := range doc.Bundles {
		s.KeyID, s.Scope, s.ExcludeFiles = b.Signing.KeyID, b.Signing.Scope, b.Signing.ExcludeFiles
	}
	return s, nil
}

// run loads the case's bundle once with a fresh manager.
func (c bundleCase) run() error {
	watch := false
	cfg := bundles.Config{Path: c.path, BaseDir: c.baseDir, Signing: c.signing, MaxSize: c.maxSize,
		Entrypoint: c.entrypoint, Watch: &watch}
	m, err := bundles.NewManager(cfg, bundles.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		if !c.loads {
			return checkError(err, c.errorText)
		}
		return fmt.Errorf("config rejected: %v", err)
	}
	defer m.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = m.Start(ctx)

	if !c.loads {
		if err == nil {
			return errors.New("bundle loaded, want rejected")
		}
		return checkError(err, c.errorText)
	}
	// A bundle without a decision rule passed every bundle check. Only the
	// product's entrypoint requirement remains, which these corpus bundles
	// were not written for.
	if err != nil && !errors.Is(err, bundles.ErrMissingEntrypoint) {
		return fmt.Errorf("bundle rejected, want loaded: %v", err)
	}
	if err != nil {
		return nil
	}
	return c.checkLoaded(ctx, m)
}

func (c bundleCase) checkLoaded(ctx context.Context, m *bundles.Manager) error {
	p := m.Active()
	if c.wantRevision != "" && p.Revision() != c.wantRevision {
		return fmt.Errorf("revision = %q, want %q", p.Revision(), c.wantRevision)
	}
	if c.want != nil {
		got, defined, err := p.Eval(ctx, ast.NewObject())
		if err != nil || !defined || !reflect.DeepEqual(got, c.want) {
			return fmt.Errorf("%s = %v (defined %v, error %v), want %v", c.entrypoint, got, defined, err, c.want)
		}
	}
	// The data document also holds the (empty) virtual documents of the
	// bundle's packages, so only the base documents listed are compared.
	for key, want := range c.wantData {
		got, _, err := p.Query(ctx, key, nil)
		if err != nil || !reflect.DeepEqual(got, want) {
			return fmt.Errorf("data.%s = %v (error %v), want %v", key, got, err, want)
		}
	}
	return nil
}

func checkError(err error, want string) error {
	if want != "" && !strings.Contains(err.Error(), want) {
		return fmt.Errorf("rejected with %q, want an error containing %q", err, want)
	}
	return nil
}

// runSignatureVectors loads, for each JWT vector, a bundle holding only a
// .signatures.json with the vector's token. A vector that must verify then
// fails only because the files it lists are absent. A vector that must
// fail is rejected with OPA's message.
func runSignatureVectors(root string, r *report) {
	raw, err := os.ReadFile(filepath.Join(root, "signature-jwt-vectors", "vectors.json"))
	if err != nil {
		r.fail("signature-jwt-vectors", "%v", err)
		return
	}
	var doc struct {
		PublicKeys map[string]any `json:"public_keys"`
		Cases      []struct {
			Name  string `json:"name"`
			Token string `json:"token"`
			Keys  map[string]struct {
				Key       string `json:"key"`
				Algorithm string `json:"algorithm"`
			} `json:"keys"`
			KeyID       string `json:"keyid"`
			Scope       string `json:"scope"`
			Expect      string `json:"expect"`
			ExpectError string `json:"expect_error"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		r.fail("signature-jwt-vectors", "%v", err)
		return
	}
	for _, v := range doc.Cases {
		var signing bundles.SigningConfig
		for id, k := range v.Keys {
			key := k.Key
			if name, ok := strings.CutPrefix(key, "$"); ok {
				key, _ = doc.PublicKeys[name].(string)
			}
			signing.Keys = append(signing.Keys, bundles.KeyConfig{ID: id, Algorithm: k.Algorithm, Key: key})
		}
		if len(signing.Keys) == 0 {
			// Verification with no matching key: the product turns
			// verification on only when a key is configured.
			signing.Keys = []bundles.KeyConfig{{ID: "unrelated", Algorithm: "HS256", Key: "unrelated"}}
		}
		signing.KeyID, signing.Scope = v.KeyID, v.Scope

		want := v.ExpectError
		switch {
		case v.Expect != "":
			want = "specified in bundle signatures but not found in the target bundle"
		case strings.Contains(want, "(wording is library-specific)"):
			want = "failed to split compact JWT"
		case strings.HasPrefix(want, "unknown signature algorithm: "):
			// The product rejects the algorithm when it reads its config.
			want = strings.TrimPrefix(want, "unknown signature algorithm: ")
		case strings.HasPrefix(want, "failed to verify JWT signature"):
			want = "failed to verify JWT signature"
		}
		r.check("signature-jwt-vectors/"+v.Name, runSignatureVector(v.Token, signing, want))
	}
}

func runSignatureVector(token string, signing bundles.SigningConfig, want string) error {
	dir, err := os.MkdirTemp("", "pdp-jwt-vector-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sig, _ := json.Marshal(map[string]any{"signatures": []string{token}})
	if err := os.WriteFile(filepath.Join(dir, ".signatures.json"), sig, 0o644); err != nil {
		return err
	}
	c := bundleCase{path: dir, signing: signing, errorText: want}
	return c.run()
}
