// Package config loads the PDP's one YAML configuration file, applies
// PDP_* environment overrides and validates the result, reporting every
// problem at once with its key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/authgate/pdp/api"
	"github.com/authgate/pdp/audit"
	"github.com/authgate/pdp/bundles"
	"github.com/authgate/pdp/identity"
	"github.com/authgate/pdp/message"
	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/replaycache"
	"github.com/authgate/pdp/telemetry"
	"github.com/authgate/pdp/transport"
)

// Defaults for the top-level settings.
const (
	DefaultHTTPAddr        = "127.0.0.1:8181"
	DefaultGRPCAddr        = "127.0.0.1:9191"
	DefaultMaxBodyBytes    = 1 << 20
	DefaultShutdownTimeout = 10 * time.Second
	DefaultLogLevel        = "info"
	DefaultLogFormat       = "auto"
	// DefaultAuditDir is relative to the working directory. It differs from
	// the audit package's own default so that `make run` in the source tree
	// never writes into the audit package folder.
	DefaultAuditDir = "pdp-audit"
	UnmatchedDeny   = "deny"
	UnmatchedPolicy = "policy"
)

// Config is the whole PDP configuration.
type Config struct {
	// Instance names this replica in audit records and inputs; default: the
	// host name.
	Instance string `yaml:"instance"`

	HTTP  HTTPConfig  `yaml:"http"`
	GRPC  GRPCConfig  `yaml:"grpc"`
	Admin AdminConfig `yaml:"admin"`
	Log   LogConfig   `yaml:"log"`

	// Limits bound concurrency, headers and the total decision time on the
	// HTTP and gRPC listeners, which share one concurrency budget.
	Limits api.LimitsConfig `yaml:"limits"`
	// Tracing selects the OpenTelemetry exporter; off by default.
	Tracing telemetry.TracingConfig `yaml:"tracing"`

	// Memory tunes the garbage collector.
	Memory MemoryConfig `yaml:"memory"`

	// PolicyTimeout bounds one policy evaluation; default 500ms.
	PolicyTimeout time.Duration `yaml:"policy_timeout"`
	// ShutdownTimeout bounds the graceful stop on SIGTERM; default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	// Routes select the mandatory checks per request class, first match
	// wins. Default: one route named "default" that matches everything and
	// requires no credential before policy.
	Routes []pdp.Route `yaml:"routes"`
	// Unmatched is the outcome for a request that matches no route: "deny"
	// (route.unmatched, the default) or "policy" (evaluate policy with no
	// mandatory checks).
	Unmatched string `yaml:"unmatched"`

	Gateway  api.Config         `yaml:"gateway"`
	Bundle   bundles.Config     `yaml:"bundle"`
	Audit    audit.Config       `yaml:"audit"`
	Replay   replaycache.Config `yaml:"replay"`
	Identity identity.Config    `yaml:"identity"`
	Messages message.Config     `yaml:"messages"`
}

// HTTPConfig sets the HTTP API listener.
type HTTPConfig struct {
	// Addr is the listen address; default 127.0.0.1:8181.
	Addr string `yaml:"addr"`
	// MaxBodyBytes caps a request body in bytes; default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// TLS serves the listener over TLS 1.3, optionally requiring client
	// certificates; off by default. Without TLS the address must be on
	// loopback.
	TLS transport.TLSConfig `yaml:"tls"`
}

// GRPCConfig sets the Envoy ext_authz gRPC listener.
type GRPCConfig struct {
	// Addr is the listen address; default 127.0.0.1:9191. Empty disables
	// the gRPC listener.
	Addr string `yaml:"addr"`
	// TLS serves the listener over TLS 1.3; see http.tls.
	TLS transport.TLSConfig `yaml:"tls"`
}

// AdminConfig sets the admin listener (revocation, reload).
type AdminConfig struct {
	// Addr is the listen address; empty (the default) disables the admin
	// listener.
	Addr string `yaml:"addr"`
	// TokenFile holds the bearer token admin calls must present. Required
	// when Addr is set.
	TokenFile string `yaml:"token_file"`
	// TLS serves the listener over TLS 1.3; see http.tls.
	TLS transport.TLSConfig `yaml:"tls"`
	// Pprof serves Go's runtime profiles under /debug/pprof/, behind the
	// admin token. Default false.
	Pprof bool `yaml:"pprof"`
}

// LogConfig sets the structured logger.
type LogConfig struct {
	// Level is debug, info, warn or error; default info.
	Level string `yaml:"level"`
	// Format is json, text or auto (text on a terminal, else json);
	// default auto.
	Format string `yaml:"format"`
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "pdp"
	}
	return &Config{
		Instance:        host,
		HTTP:            HTTPConfig{Addr: DefaultHTTPAddr, MaxBodyBytes: DefaultMaxBodyBytes},
		GRPC:            GRPCConfig{Addr: DefaultGRPCAddr},
		Log:             LogConfig{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Memory:          MemoryConfig{GCPercent: DefaultGCPercent, Limit: MemoryLimitAuto},
		PolicyTimeout:   pdp.DefaultPolicyTimeout,
		ShutdownTimeout: DefaultShutdownTimeout,
		Routes:          []pdp.Route{{Name: "default"}},
		Unmatched:       UnmatchedDeny,
		Audit:           audit.Config{Dir: DefaultAuditDir},
	}
}

// Load reads the file at path (none when path is empty) over the defaults,
// applies PDP_* overrides from environ and validates the result.
func Load(path string, environ []string) (*Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := decodeStrict(data, cfg); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(cfg, environ); err != nil {
		return nil, err
	}
	cfg.shareWindow()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decodeStrict decodes YAML into cfg and rejects unknown keys.
func decodeStrict(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var typeErr *yaml.TypeError
	if !errors.As(err, &typeErr) {
		return err
	}
	// yaml.v3 names Go types ("field x not found in type config.Config");
	// the operator wrote YAML keys, so the message names the key only.
	problems := make([]string, len(typeErr.Errors))
	for i, e := range typeErr.Errors {
		problems[i] = unknownField.ReplaceAllString(e, `unknown key "$1"`)
	}
	return fmt.Errorf("%s", strings.Join(problems, "\n"))
}

// unknownField matches yaml.v3's message for a key with no struct field.
var unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// Validate reports every problem, each prefixed with its key.
func (c *Config) Validate() error {
	var errs []error
	var add func(key string, err error)
	add = func(key string, err error) {
		if err == nil {
			return
		}
		// A section that reports several problems gets its key on each.
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				add(key, e)
			}
			return
		}
		errs = append(errs, fmt.Errorf("%s: %w", key, err))
	}
	c.validateServer(add)
	c.validateListeners(add)

	for i, r := range c.Routes {
		add(fmt.Sprintf("routes[%d]", i), r.Validate())
	}
	c.validateRouteReferences(add)

	if mw, rw := c.Messages.Window, c.Replay.Window; mw.Past != rw.Past || mw.Future != rw.Future ||
		mw.ClockSkew != rw.ClockSkew {
		add("replay.window", errors.New("must equal messages.window, or be left out to take it"))
	}
	if c.Audit.RedisStream.Enabled && c.Replay.Backend != replaycache.BackendRedis {
		add("audit.redis_stream.enabled", errors.New("requires replay.backend: redis, whose connection it uses"))
	}

	add("memory", c.Memory.Validate())
	add("gateway", c.Gateway.Validate())
	add("bundle", c.Bundle.Validate())
	add("audit", c.Audit.Validate())
	add("replay", c.Replay.Validate())
	add("identity", c.Identity.Validate())
	add("messages", c.Messages.Validate())
	add("limits", c.Limits.Validate())
	add("tracing", c.Tracing.Validate())
	return errors.Join(errs...)
}

// validateServer checks the process-wide settings.
func (c *Config) validateServer(add func(key string, err error)) {
	if c.Instance == "" {
		add("instance", errors.New("must not be empty"))
	}
	if !validLevel(c.Log.Level) {
		add("log.level", fmt.Errorf("%q is not one of debug, info, warn, error", c.Log.Level))
	}
	if c.Log.Format != "auto" && c.Log.Format != "json" && c.Log.Format != "text" {
		add("log.format", fmt.Errorf("%q is not one of auto, json, text", c.Log.Format))
	}
	if c.PolicyTimeout <= 0 {
		add("policy_timeout", fmt.Errorf("must be positive, got %s", c.PolicyTimeout))
	}
	if c.Unmatched != UnmatchedDeny && c.Unmatched != UnmatchedPolicy {
		add("unmatched", fmt.Errorf("%q is not one of deny, policy", c.Unmatched))
	}
}

// validateListeners checks the HTTP, gRPC and admin listeners. A listener
// without TLS must be on loopback.
func (c *Config) validateListeners(add func(key string, err error)) {
	if c.HTTP.Addr == "" {
		add("http.addr", errors.New("must not be empty"))
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		add("http.max_body_bytes", fmt.Errorf("must be positive, got %d", c.HTTP.MaxBodyBytes))
	}
	add("http.tls", c.HTTP.TLS.Validate())
	add("http", transport.ValidateListener(c.HTTP.Addr, c.HTTP.TLS))

	add("grpc.tls", c.GRPC.TLS.Validate())
	if c.GRPC.Addr != "" {
		add("grpc", transport.ValidateListener(c.GRPC.Addr, c.GRPC.TLS))
	}

	if c.Admin.Addr != "" && c.Admin.TokenFile == "" {
		add("admin.token_file", errors.New("required when admin.addr is set"))
	}
	if c.Admin.Pprof && c.Admin.Addr == "" {
		add("admin.pprof", errors.New("requires admin.addr: profiles are served only on the admin listener"))
	}
	add("admin.tls", c.Admin.TLS.Validate())
	if c.Admin.Addr != "" {
		add("admin", transport.ValidateListener(c.Admin.Addr, c.Admin.TLS))
	}
}

// validateRouteReferences reports routes that name an issuer or sender
// that is not configured, which would deny every request on the route.
func (c *Config) validateRouteReferences(add func(key string, err error)) {
	issuers := make(map[string]bool, len(c.Identity.Issuers))
	for _, iss := range c.Identity.Issuers {
		issuers[iss.Name] = true
	}
	senders := make(map[string]bool, len(c.Messages.Senders))
	for _, s := range c.Messages.Senders {
		senders[s.Name] = true
	}
	for i, r := range c.Routes {
		for j, name := range r.Token.Issuers {
			if !issuers[name] {
				add(fmt.Sprintf("routes[%d].token.issuers[%d]", i, j),
					fmt.Errorf("no issuer named %q in identity.issuers", name))
			}
		}
		for j, name := range r.Message.Senders {
			if !senders[name] {
				add(fmt.Sprintf("routes[%d].message.senders[%d]", i, j),
					fmt.Errorf("no sender named %q in messages.senders", name))
			}
		}
	}
}

// shareWindow copies the message timestamp window to the replay store when
// only one of them is set, because the store keeps each nonce exactly as
// long as the verifier accepts its message.
func (c *Config) shareWindow() {
	mw, rw := &c.Messages.Window, &c.Replay.Window
	if *rw == (replaycache.Window{}) {
		*rw = replaycache.Window{Past: mw.Past, Future: mw.Future, ClockSkew: mw.ClockSkew}
	}
	if *mw == (message.Window{}) {
		*mw = message.Window{Past: rw.Past, Future: rw.Future, ClockSkew: rw.ClockSkew}
	}
}

func validLevel(level string) bool {
	switch level {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}
