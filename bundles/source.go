package bundles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// Source kinds, as named in logs.
const (
	sourceDirectory = "directory"
	sourceTarball   = "tarball"
	sourceRemote    = "remote"
	sourceEmbedded  = "embedded"
)

// readSettings are the reader options shared by every source.
type readSettings struct {
	verification *bundle.VerificationConfig
	maxSize      int64
	// baseDir is the directory prefix of the file names in the bundle's
	// signature, "" for none.
	baseDir string
}

// newVerificationConfig maps the signing settings to OPA's verification
// config. It returns nil, meaning "no verification", when no keys are
// configured. OPA then rejects any bundle that carries signatures.
func newVerificationConfig(s SigningConfig) (*bundle.VerificationConfig, error) {
	if len(s.Keys) == 0 {
		return nil, nil
	}
	keys, err := s.readKeyFiles()
	if err != nil {
		return nil, err
	}
	vc := bundle.NewVerificationConfig(keys, s.KeyID, s.Scope, s.ExcludeFiles)
	if !s.Required {
		vc = vc.WithOptionalSignature()
	}
	return vc, nil
}

// read runs OPA's bundle reader, which parses the manifest, data and
// modules, checks roots and verifies signatures.
func (s readSettings) read(loader bundle.DirectoryLoader) (*bundle.Bundle, error) {
	loader = loader.WithSizeLimitBytes(s.maxSize)
	reader := bundle.NewCustomReader(loader).
		WithBundleVerificationConfig(s.verification).
		WithSizeLimitBytes(s.maxSize).
		WithRegoVersion(ast.RegoV1)
	if s.baseDir != "" {
		reader = reader.WithBaseDir(s.baseDir)
	}
	b, err := reader.Read()
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// readDirectory reads the bundle in the directory that path names after
// following symlinks.
func (s readSettings) readDirectory(path string) (*bundle.Bundle, error) {
	dir, err := resolveDirectory(path)
	if err != nil {
		return nil, err
	}
	// The base directory is a property of signed tarballs; directory
	// loaders name files relative to dir.
	s.baseDir = ""
	return s.read(bundle.NewDirectoryLoader(dir))
}

// resolveDirectory follows the symlinks in path and returns the directory
// it names. OPA's directory loader does not follow a symlinked root, and a
// Kubernetes volume swaps a symlink to publish new files, so the path is
// resolved again at each load. The error wraps fs.ErrNotExist when path,
// or the target of a symlink in it, does not exist.
func resolveDirectory(path string) (string, error) {
	dir, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("bundle directory %s not found: %w", path, err)
	}
	if err != nil {
		return "", fmt.Errorf("resolve bundle directory %s: %w", path, err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("bundle directory %s: %w", path, err)
	}
	if !info.IsDir() {
		return "", fmt.Errorf("%s is not a directory", path)
	}
	return dir, nil
}

// readTarball reads a .tar.gz bundle file.
func (s readSettings) readTarball(file string) (*bundle.Bundle, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	baseURL := file
	if s.baseDir != "" {
		baseURL = s.baseDir
	}
	return s.read(bundle.NewTarballLoaderWithBaseURL(f, baseURL))
}

// readFS reads a bundle from a file system such as the embedded bundle.
func (s readSettings) readFS(fsys fs.FS) (*bundle.Bundle, error) {
	loader, err := bundle.NewFSLoader(fsys)
	if err != nil {
		return nil, err
	}
	return s.read(loader)
}

// isTarball reports whether path names a bundle file rather than a
// directory.
func isTarball(path string) bool {
	return strings.HasSuffix(path, ".tar.gz") || strings.HasSuffix(path, ".tgz")
}

// locateIn rewrites the file names of Rego errors, which OPA gives relative
// to the bundle root, into paths below dir, so a log line names the file
// an operator can open.
func locateIn(dir string, err error) error {
	var astErrs ast.Errors
	if !errors.As(err, &astErrs) {
		return err
	}
	out := make(ast.Errors, 0, len(astErrs))
	for _, e := range astErrs {
		c := *e
		if e.Location != nil {
			loc := *e.Location
			loc.File = filepath.Join(dir, strings.TrimPrefix(loc.File, "/"))
			c.Location = &loc
		}
		out = append(out, &c)
	}
	return out
}

// errorLocation returns the file and line of the first Rego error in err,
// or "" and 0 when err carries no location.
func errorLocation(err error) (string, int) {
	var astErrs ast.Errors
	if errors.As(err, &astErrs) {
		for _, e := range astErrs {
			if e.Location != nil {
				return e.Location.File, e.Location.Row
			}
		}
	}
	var astErr *ast.Error
	if errors.As(err, &astErr) && astErr.Location != nil {
		return astErr.Location.File, astErr.Location.Row
	}
	return "", 0
}
