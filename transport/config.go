// Package transport builds the TLS configuration of every PDP listener
// (HTTP API, gRPC, admin): TLS 1.3 only, client certificates verified
// against a CA bundle, an optional allow-list of client SPIFFE IDs or
// subjects, and certificates reloaded from disk without a restart.
package transport

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Client authentication modes for TLSConfig.ClientAuth.
const (
	ClientAuthNone    = "none"
	ClientAuthRequire = "require"
)

// DefaultReloadInterval is how often the certificate, key and CA files are
// read again to pick up a rotation.
const DefaultReloadInterval = 30 * time.Second

// TLSConfig sets TLS for one listener. With CertFile empty the listener
// serves plain text, which ValidateListener allows on loopback only.
type TLSConfig struct {
	// CertFile is the PEM server certificate chain, leaf first. Default
	// none (TLS off).
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile's leaf. Required with
	// CertFile.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile is the PEM bundle of CAs that sign client certificates.
	// Required when ClientAuth is require.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is none or require. Default: require when ClientCAFile is
	// set, else none.
	ClientAuth string `yaml:"client_auth"`
	// AllowedClients lists client SPIFFE IDs (spiffe://...) or certificate
	// subjects in RFC 2253 form as Go's pkix.Name.String writes them
	// ("CN=gateway,O=Example"). Empty allows any client certificate that
	// the CA bundle verifies. Needs ClientAuth require.
	AllowedClients []string `yaml:"allowed_clients"`
	// ReloadInterval is the least time between two reads of the files, so
	// at most one handshake per interval pays for a reload. Default
	// DefaultReloadInterval.
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// Enabled reports whether the listener serves TLS.
func (c *TLSConfig) Enabled() bool { return c.CertFile != "" }

// clientAuth returns the effective client authentication mode.
func (c *TLSConfig) clientAuth() string {
	if c.ClientAuth != "" {
		return c.ClientAuth
	}
	if c.ClientCAFile != "" {
		return ClientAuthRequire
	}
	return ClientAuthNone
}

func (c *TLSConfig) reloadInterval() time.Duration {
	if c.ReloadInterval <= 0 {
		return DefaultReloadInterval
	}
	return c.ReloadInterval
}

// Validate reports every problem in the TLS settings, each with its key.
// It checks the settings only; NewServerTLS reads and checks the files.
func (c *TLSConfig) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf(key+": "+format, args...))
	}

	if !c.Enabled() {
		if c.KeyFile != "" || c.ClientCAFile != "" || c.ClientAuth != "" ||
			len(c.AllowedClients) > 0 {
			add("cert_file", "required when any other TLS setting is set")
		}
		return errors.Join(errs...)
	}
	if c.KeyFile == "" {
		add("key_file", "required when cert_file is set")
	}
	switch c.clientAuth() {
	case ClientAuthRequire:
		if c.ClientCAFile == "" {
			add("client_ca_file", "required when client_auth is require")
		}
	case ClientAuthNone:
		if c.ClientCAFile != "" {
			add("client_auth", "is none but client_ca_file is set; set require or remove the CA file")
		}
		if len(c.AllowedClients) > 0 {
			add("allowed_clients", "needs client_auth require")
		}
	default:
		add("client_auth", "%q is not one of none, require", c.ClientAuth)
	}
	for i, id := range c.AllowedClients {
		if err := checkAllowedClient(id); err != nil {
			add(fmt.Sprintf("allowed_clients[%d]", i), "%v", err)
		}
	}
	if c.ReloadInterval < 0 {
		add("reload_interval", "must not be negative, got %s", c.ReloadInterval)
	}
	return errors.Join(errs...)
}

func checkAllowedClient(id string) error {
	if strings.TrimSpace(id) == "" {
		return errors.New("must not be empty")
	}
	if !strings.HasPrefix(id, "spiffe://") {
		return nil
	}
	u, err := url.Parse(id)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not a valid SPIFFE ID", id)
	}
	return nil
}

// ValidateListener reports an error when a listener on addr would serve
// plain text beyond loopback. Without TLS, anyone on the network path
// could read tokens and forge decisions.
func ValidateListener(addr string, c TLSConfig) error {
	if c.Enabled() {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q is not host:port: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("listen address %q is not loopback, so it needs tls.cert_file", addr)
}
