// Package bundles loads OPA bundles (directory, .tar.gz, remote bundle
// server, signed), compiles them into prepared queries and swaps the active
// revision atomically.
package bundles

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/keys"
)

// Defaults applied to fields left at their zero value.
const (
	// DefaultEntrypoint is the rule that produces the decision.
	DefaultEntrypoint = "data.pdp.authz.decision"
	// DefaultResource is the bundle's path on the bundle server, following
	// OPA's bundles/<name> convention.
	DefaultResource = "bundles/bundle.tar.gz"
	// DefaultMinPollingDelay and DefaultMaxPollingDelay bound the jittered
	// wait between two polls of the bundle server (OPA's defaults).
	DefaultMinPollingDelay = 60 * time.Second
	DefaultMaxPollingDelay = 120 * time.Second
	// DefaultMaxSize is the largest bundle file read, in bytes. OPA's
	// reader defaults to 1 GiB against gzip bombs. Policy bundles are
	// usually far smaller, so this default is tighter. Raise max_size for
	// bundles with large data files.
	DefaultMaxSize = 64 << 20
	// DefaultQueryCacheSize bounds the prepared data queries kept per
	// revision for the /v1/data API.
	DefaultQueryCacheSize = 256
	// DefaultDecisionCacheSize bounds the cached results per revision.
	// One entry holds a result and a 32-byte key, typically well under
	// 2 KB for decision objects like the shipped policy's.
	DefaultDecisionCacheSize = 4096
	// DefaultWatchDebounce is how long the file watcher waits after the last
	// change event before it reloads, so an editor's burst of writes causes
	// one reload.
	DefaultWatchDebounce = 100 * time.Millisecond
)

// Config selects the bundle source and the decision entrypoint. With
// neither Path nor URL set, the Manager serves the embedded shipped bundle.
type Config struct {
	// Path is a bundle directory or a bundle file ending in .tar.gz or
	// .tgz. It cannot be combined with URL. Default: none.
	Path string `yaml:"path"`
	// BaseDir is the directory prefix that a signed .tar.gz bundle's
	// signature puts before each file name ("/foo/bar" when the signed
	// names read "foo/bar/.manifest"), as OPA's reader option of the same
	// name. Default none: names are relative to the bundle root.
	BaseDir string `yaml:"base_dir"`
	// URL is the base URL of a remote bundle server, for example
	// https://bundles.example.test. Default: none.
	URL string `yaml:"url"`
	// Resource is the bundle's path below URL. Default DefaultResource.
	Resource string `yaml:"resource"`
	// Polling sets how often the bundle server is polled.
	Polling PollingConfig `yaml:"polling"`
	// Credentials authenticate the PDP to the bundle server.
	Credentials CredentialsConfig `yaml:"credentials"`
	// TLS configures server certificate checks for the bundle server.
	TLS TLSConfig `yaml:"tls"`
	// Entrypoint is the rule that produces the decision, as a data
	// reference. When the bundle does not define it, the sibling rule
	// "allow" in the same package is used instead. Default DefaultEntrypoint.
	Entrypoint string `yaml:"entrypoint"`
	// Signing configures bundle signature verification.
	Signing SigningConfig `yaml:"signing"`
	// Watch reloads a Path source when its files change. Default true.
	Watch *bool `yaml:"watch"`
	// MaxSize is the largest file read from a bundle, in bytes. For a
	// .tar.gz it limits each entry after decompression. Default
	// DefaultMaxSize.
	MaxSize int64 `yaml:"max_size"`
	// QueryCacheSize is the number of prepared /v1/data queries kept per
	// revision. Default DefaultQueryCacheSize.
	QueryCacheSize int `yaml:"query_cache_size"`
	// DecisionCacheSize is the number of evaluation results kept per
	// revision, keyed by the query and the input parts the policy can
	// read; -1 turns the cache off. Policies that call a builtin whose
	// result can change between calls (time.now_ns, http.send,
	// io.jwt.decode_verify, ...) are never cached. Default
	// DefaultDecisionCacheSize.
	DecisionCacheSize int `yaml:"decision_cache_size"`
}

// PollingConfig sets the wait between polls of the bundle server. OPA's
// downloader counts whole seconds, so both delays must be whole seconds.
type PollingConfig struct {
	// MinDelay is the shortest wait between two polls. Default
	// DefaultMinPollingDelay.
	MinDelay time.Duration `yaml:"min_delay"`
	// MaxDelay is the longest wait between two polls, and the longest retry
	// backoff after a failed download. Default DefaultMaxPollingDelay.
	MaxDelay time.Duration `yaml:"max_delay"`
	// LongPollingTimeout enables long polling: the server may hold a poll
	// open this long until a new bundle is ready. It takes effect only when
	// the server answers with the OPA bundle content type. Default 0 (short
	// polling).
	LongPollingTimeout time.Duration `yaml:"long_polling_timeout"`
}

// CredentialsConfig holds the bearer token sent to the bundle server. Set
// at most one of the two fields.
type CredentialsConfig struct {
	// BearerToken is sent as "Authorization: Bearer <token>". Default none.
	BearerToken string `yaml:"bearer_token"`
	// BearerTokenFile is a file holding the token, read before each request
	// so a rotated token takes effect without a restart. Default none.
	BearerTokenFile string `yaml:"bearer_token_file"`
}

// TLSConfig configures how the bundle server's certificate is checked.
type TLSConfig struct {
	// CAFile is a PEM file of CA certificates trusted for the bundle server,
	// in place of the system roots. Default: the system roots.
	CAFile string `yaml:"ca_file"`
}

// SigningConfig configures bundle signature verification, as OPA's
// bundle.VerificationConfig does.
type SigningConfig struct {
	// Required rejects a bundle without .signatures.json. When false, a
	// bundle that carries signatures is still verified against Keys.
	// Default false. True requires at least one key.
	Required bool `yaml:"required"`
	// Keys are the verification keys, looked up by the JWT's kid header
	// unless KeyID is set.
	Keys []KeyConfig `yaml:"keys"`
	// KeyID names the key that must have signed the bundle, overriding the
	// JWT's kid. Default: the JWT's kid.
	KeyID string `yaml:"key_id"`
	// Scope must equal the scope claim of the signature when set. Default:
	// not checked.
	Scope string `yaml:"scope"`
	// ExcludeFiles are glob patterns (path.Match syntax, relative to the
	// bundle root) of files not checked against the signature. Every
	// excluded file weakens the signature. Default none.
	ExcludeFiles []string `yaml:"exclude_files"`
}

// KeyConfig is one bundle verification key. Set exactly one of Key and
// KeyFile.
type KeyConfig struct {
	// ID is the key id that signatures name in their kid header. Required.
	ID string `yaml:"id"`
	// Algorithm is the JWS algorithm: RS256/384/512, PS256/384/512,
	// ES256/384/512 or HS256/384/512. Default RS256.
	Algorithm string `yaml:"algorithm"`
	// Key is a PEM public key or certificate, or the shared secret for the
	// HS* algorithms.
	Key string `yaml:"key"`
	// KeyFile is a file holding Key. Leading and trailing whitespace,
	// such as the final newline, is removed.
	KeyFile string `yaml:"key_file"`
}

// Options are the non-configuration inputs of a Manager.
type Options struct {
	Logger *slog.Logger
	// Embedded is the shipped bundle, served when no source is configured.
	Embedded fs.FS
	// OnActivate, when not nil, receives the outcome of each activation
	// attempt: the new revision and nil on success, or the revision that
	// keeps serving ("" if none) and the error on failure. A failed
	// download from a bundle server is a failed attempt, and a Not Modified
	// response is no attempt. It runs on the loading goroutine, with no
	// Manager lock held, and must not call Reload or Stop. Concurrent
	// attempts, such as a Reload during a watcher reload, may report in
	// either order.
	OnActivate func(revision string, err error)
}

// Validate reports every problem in the configuration at once, each with
// its key.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	if c.Path != "" && c.URL != "" {
		add("bundle: set only one of path and url")
	}
	if c.URL != "" {
		errs = append(errs, validateURL(c.URL))
	}
	if c.URL == "" && (c.Resource != "" || c.Credentials != (CredentialsConfig{}) || c.TLS.CAFile != "") {
		add("bundle: resource, credentials and tls apply only with url")
	}
	if c.Credentials.BearerToken != "" && c.Credentials.BearerTokenFile != "" {
		add("bundle.credentials: set only one of bearer_token and bearer_token_file")
	}
	if c.Entrypoint != "" {
		if _, err := parseEntrypoint(c.Entrypoint); err != nil {
			add("bundle.entrypoint: %w", err)
		}
	}
	if c.MaxSize < 0 {
		add("bundle.max_size: %d is negative, want a size in bytes", c.MaxSize)
	}
	if c.QueryCacheSize < 0 {
		add("bundle.query_cache_size: %d is negative", c.QueryCacheSize)
	}
	if c.DecisionCacheSize < -1 {
		add("bundle.decision_cache_size: %d is not -1 (off) or a size", c.DecisionCacheSize)
	}
	errs = append(errs, c.Polling.validate())
	errs = append(errs, c.Signing.validate())
	return errors.Join(errs...)
}

func validateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bundle.url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("bundle.url: %q must start with http:// or https://", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("bundle.url: %q has no host", raw)
	}
	return nil
}

func (p PollingConfig) validate() error {
	var errs []error
	check := func(key string, d time.Duration) {
		if d == 0 {
			return
		}
		if d < time.Second || d%time.Second != 0 {
			errs = append(errs, fmt.Errorf("bundle.polling.%s: %v must be a whole number of seconds, at least 1s", key, d))
		}
	}
	check("min_delay", p.MinDelay)
	check("max_delay", p.MaxDelay)
	check("long_polling_timeout", p.LongPollingTimeout)
	if p.MinDelay > 0 && p.MaxDelay > 0 && p.MaxDelay < p.MinDelay {
		errs = append(errs, fmt.Errorf("bundle.polling.max_delay: %v is below min_delay %v", p.MaxDelay, p.MinDelay))
	}
	return errors.Join(errs...)
}

func (s SigningConfig) validate() error {
	var errs []error
	if s.Required && len(s.Keys) == 0 {
		errs = append(errs, errors.New("bundle.signing.keys: required is true but no keys are configured"))
	}
	if len(s.Keys) == 0 && (s.KeyID != "" || s.Scope != "" || len(s.ExcludeFiles) > 0) {
		errs = append(errs, errors.New("bundle.signing: key_id, scope and exclude_files need keys"))
	}
	seen := map[string]bool{}
	for i, k := range s.Keys {
		key := fmt.Sprintf("bundle.signing.keys[%d]", i)
		if k.ID == "" {
			errs = append(errs, fmt.Errorf("%s.id: missing", key))
		}
		if seen[k.ID] {
			errs = append(errs, fmt.Errorf("%s.id: %q is used twice", key, k.ID))
		}
		seen[k.ID] = true
		if (k.Key == "") == (k.KeyFile == "") {
			errs = append(errs, fmt.Errorf("%s: set exactly one of key and key_file", key))
		}
		if k.Algorithm != "" && !keys.IsSupportedAlgorithm(k.Algorithm) {
			errs = append(errs, fmt.Errorf("%s.algorithm: %q is not supported, want RS*, PS*, ES* or HS* with 256, 384 or 512", key, k.Algorithm))
		}
	}
	if s.KeyID != "" && !seen[s.KeyID] {
		errs = append(errs, fmt.Errorf("bundle.signing.key_id: %q names no configured key", s.KeyID))
	}
	return errors.Join(errs...)
}

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Entrypoint == "" {
		c.Entrypoint = DefaultEntrypoint
	}
	if c.Resource == "" {
		c.Resource = DefaultResource
	}
	if c.Polling.MinDelay == 0 {
		c.Polling.MinDelay = DefaultMinPollingDelay
	}
	if c.Polling.MaxDelay == 0 {
		c.Polling.MaxDelay = max(DefaultMaxPollingDelay, c.Polling.MinDelay)
	}
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.QueryCacheSize == 0 {
		c.QueryCacheSize = DefaultQueryCacheSize
	}
	if c.DecisionCacheSize == 0 {
		c.DecisionCacheSize = DefaultDecisionCacheSize
	}
	if c.Watch == nil {
		watch := true
		c.Watch = &watch
	}
	return c
}

// parseEntrypoint parses a data reference such as data.pdp.authz.decision.
func parseEntrypoint(s string) (ast.Ref, error) {
	ref, err := ast.ParseRef(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a data reference: %w", s, err)
	}
	if !ref.HasPrefix(ast.DefaultRootRef) || len(ref) < 2 || !ref.IsGround() {
		return nil, fmt.Errorf("%q must be a reference below data, such as %s", s, DefaultEntrypoint)
	}
	return ref, nil
}

// readKeyFiles returns the signing keys in OPA's form, reading key files.
func (s SigningConfig) readKeyFiles() (map[string]*keys.Config, error) {
	out := make(map[string]*keys.Config, len(s.Keys))
	for _, k := range s.Keys {
		material := k.Key
		if k.KeyFile != "" {
			b, err := os.ReadFile(k.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("bundle.signing.keys: read key %q: %w", k.ID, err)
			}
			material = strings.TrimSpace(string(b))
		}
		alg := k.Algorithm
		if alg == "" {
			alg = "RS256"
		}
		out[k.ID] = &keys.Config{Key: material, Algorithm: alg}
	}
	return out, nil
}
