package api

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Defaults applied to gateway settings left at their zero value.
const (
	DefaultSubjectHeader    = "x-pdp-subject"
	DefaultTenantHeader     = "x-pdp-tenant"
	DefaultIssuerHeader     = "x-pdp-issuer"
	DefaultSpiffeIDHeader   = "x-pdp-spiffe-id"
	DefaultDecisionIDHeader = "x-pdp-decision-id"
	// DefaultSignatureHeader is the Standard Webhooks signature header; its
	// presence makes a gateway request carry a signed message.
	DefaultSignatureHeader = "webhook-signature"
	// DefaultExtAuthzPrefix is the path prefix of Envoy's HTTP ext_authz
	// mode; Envoy's http_service.path_prefix must be the same.
	DefaultExtAuthzPrefix = "/ext_authz"
	// DefaultNGINXPath is the path nginx's auth_request subrequest calls.
	DefaultNGINXPath = "/nginx/auth"
	// DefaultOPADefaultDecision is the data path POST / evaluates, as in
	// OPA (--set default_decision).
	DefaultOPADefaultDecision = "system/main"
)

// Config sets how the gateway front doors map requests and decisions. It is
// loaded from the gateway: key of the YAML configuration; every field may be
// left out to take its default.
type Config struct {
	// TokenHeader is the header that carries the caller's token; the
	// command copies identity.token_header here. Empty means Authorization
	// with the Bearer scheme.
	TokenHeader string `yaml:"-"`
	// IdentityHeaders names the request headers the PDP sets upstream from
	// the verified identity on allow. A client can never pass them through:
	// on allow each is overwritten, or removed when the fact is unknown.
	IdentityHeaders IdentityHeaders `yaml:"identity_headers"`
	// SignatureHeader is the request header whose presence makes a gateway
	// request carry a signed message (pdp.SignedMessage). Default
	// webhook-signature.
	SignatureHeader string `yaml:"signature_header"`
	// ExtAuthzPrefix is the path prefix of Envoy's HTTP ext_authz mode:
	// Envoy appends the original request path to it. Default /ext_authz.
	ExtAuthzPrefix string `yaml:"ext_authz_prefix"`
	// NGINXPath is the path of the NGINX auth_request endpoint. Default
	// /nginx/auth.
	NGINXPath string `yaml:"nginx_path"`
	// OPARest sets the OPA REST compatible data API.
	OPARest OPARestConfig `yaml:"opa_rest"`
	// AuthZEN sets the OpenID AuthZEN Authorization API.
	AuthZEN AuthZENConfig `yaml:"authzen"`
}

// IdentityHeaders names the headers injected upstream. Each defaults to the
// x-pdp-* name shown; set one to "-" to never send that fact (the header
// is then still removed from the client's request).
type IdentityHeaders struct {
	// Subject carries identity.subject. Default x-pdp-subject.
	Subject string `yaml:"subject"`
	// Tenant carries identity.tenant. Default x-pdp-tenant.
	Tenant string `yaml:"tenant"`
	// Issuer carries identity.issuer. Default x-pdp-issuer.
	Issuer string `yaml:"issuer"`
	// SpiffeID carries identity.spiffe_id. Default x-pdp-spiffe-id.
	SpiffeID string `yaml:"spiffe_id"`
	// DecisionID carries the decision id, set on every allow. Default
	// x-pdp-decision-id.
	DecisionID string `yaml:"decision_id"`
}

// OPARestConfig sets the OPA REST compatible API (/v1/data, POST /).
type OPARestConfig struct {
	// Disabled turns off /v1/data and POST /. Default false: they are on,
	// because an operator swaps the PDP in for OPA by address alone.
	Disabled bool `yaml:"disabled"`
	// DefaultDecision is the data path POST / evaluates. Default
	// system/main, as in OPA.
	DefaultDecision string `yaml:"default_decision"`
}

// AuthZENConfig sets the OpenID AuthZEN Authorization API.
type AuthZENConfig struct {
	// Disabled turns off /access/v1/* and the metadata document. Default
	// false.
	Disabled bool `yaml:"disabled"`
	// BaseURL is the PDP's public base URL published in
	// /.well-known/authzen-configuration, for example
	// https://pdp.example.test. Default: built from the request's Host.
	BaseURL string `yaml:"base_url"`
}

// withDefaults returns c with every empty field set to its default.
func (c Config) withDefaults() Config {
	h := &c.IdentityHeaders
	setDefault(&h.Subject, DefaultSubjectHeader)
	setDefault(&h.Tenant, DefaultTenantHeader)
	setDefault(&h.Issuer, DefaultIssuerHeader)
	setDefault(&h.SpiffeID, DefaultSpiffeIDHeader)
	setDefault(&h.DecisionID, DefaultDecisionIDHeader)
	setDefault(&c.SignatureHeader, DefaultSignatureHeader)
	setDefault(&c.ExtAuthzPrefix, DefaultExtAuthzPrefix)
	setDefault(&c.NGINXPath, DefaultNGINXPath)
	setDefault(&c.OPARest.DefaultDecision, DefaultOPADefaultDecision)

	for _, p := range []*string{&h.Subject, &h.Tenant, &h.Issuer, &h.SpiffeID, &h.DecisionID, &c.SignatureHeader} {
		*p = strings.ToLower(*p)
	}
	c.ExtAuthzPrefix = "/" + strings.Trim(c.ExtAuthzPrefix, "/")
	return c
}

func setDefault(p *string, value string) {
	if *p == "" {
		*p = value
	}
}

// Validate reports every problem in the configuration, each with its key.
func (c *Config) Validate() error {
	var errs []error
	add := func(key string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	h := c.IdentityHeaders
	add("identity_headers.subject", validHeaderName(h.Subject, true))
	add("identity_headers.tenant", validHeaderName(h.Tenant, true))
	add("identity_headers.issuer", validHeaderName(h.Issuer, true))
	add("identity_headers.spiffe_id", validHeaderName(h.SpiffeID, true))
	add("identity_headers.decision_id", validHeaderName(h.DecisionID, true))
	add("signature_header", validHeaderName(c.SignatureHeader, false))
	add("ext_authz_prefix", validPathPrefix(c.ExtAuthzPrefix))
	add("nginx_path", validPathPrefix(c.NGINXPath))
	if c.NGINXPath != "" && c.NGINXPath == c.ExtAuthzPrefix {
		add("nginx_path", errors.New("must differ from ext_authz_prefix"))
	}
	if strings.ContainsAny(c.OPARest.DefaultDecision, " \"") {
		add("opa_rest.default_decision",
			fmt.Errorf("%q is not a slash-separated data path", c.OPARest.DefaultDecision))
	}
	if u := c.AuthZEN.BaseURL; u != "" {
		parsed, err := url.Parse(u)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			add("authzen.base_url", fmt.Errorf("%q is not an absolute http or https URL", u))
		}
	}
	return errors.Join(errs...)
}

// validHeaderName accepts an empty name (the default applies), a valid
// header token, and "-" where allowDash is set.
func validHeaderName(name string, allowDash bool) error {
	if name == "" || (allowDash && name == "-") {
		return nil
	}
	if !isToken(name) {
		return fmt.Errorf("%q is not a valid header name", name)
	}
	return nil
}

func isToken(s string) bool {
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, c) {
			return false
		}
	}
	return s != ""
}

// validPathPrefix accepts an empty value (the default applies) or an
// absolute path without a query or "." segments.
func validPathPrefix(p string) error {
	if p == "" {
		return nil
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#%") || p == "/" {
		return fmt.Errorf("%q must be an absolute path other than / without ?, # or %%", p)
	}
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%q must not contain empty, . or .. segments", p)
		}
	}
	return nil
}
