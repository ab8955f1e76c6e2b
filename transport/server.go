package transport

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ServerTLS serves the TLS configuration of one listener and reloads its
// files from disk. It is safe for concurrent use.
type ServerTLS struct {
	cfg     TLSConfig
	log     *slog.Logger
	allowed map[string]bool

	// current is the last configuration that loaded without error.
	current atomic.Pointer[loadedTLS]
	// nextCheck is when the files are read again, in Unix nanoseconds.
	nextCheck atomic.Int64
	// reloadMu lets one handshake at a time read the files.
	reloadMu sync.Mutex
	// failedDigest is the digest of the last file set that failed to load,
	// so a broken rotation is logged once, not once per interval.
	failedDigest [sha256.Size]byte

	rejectedClients atomic.Uint64
}

// loadedTLS is one loaded set of files.
type loadedTLS struct {
	digest   [sha256.Size]byte
	config   *tls.Config
	notAfter time.Time
}

// NewServerTLS reads and checks the files that cfg names and returns the
// listener's TLS source. cfg must be valid and enabled.
func NewServerTLS(cfg TLSConfig, log *slog.Logger) (*ServerTLS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, errors.New("tls: cert_file is not set")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &ServerTLS{cfg: cfg, log: log, allowed: map[string]bool{}}
	for _, id := range cfg.AllowedClients {
		s.allowed[id] = true
	}

	files, digest, err := s.readFiles()
	if err != nil {
		return nil, err
	}
	loaded, err := s.build(files, digest)
	if err != nil {
		return nil, err
	}
	s.current.Store(loaded)
	s.nextCheck.Store(time.Now().Add(cfg.reloadInterval()).UnixNano())
	return s, nil
}

// Config returns the *tls.Config for the listener. nextProtos are the ALPN
// protocols it offers: "h2" for gRPC, "h2" and "http/1.1" for HTTP.
//
// Every handshake gets the latest loaded files through GetConfigForClient.
// The version is pinned to TLS 1.3, which has no renegotiation, so a
// client cannot change its identity on a live connection.
func (s *ServerTLS) Config(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			s.maybeReload()
			cfg := s.current.Load().config.Clone()
			cfg.NextProtos = nextProtos
			return cfg, nil
		},
	}
}

// Reload reads the files now and switches to them when they changed and
// load without error. On error the previous files stay in use.
func (s *ServerTLS) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.reloadLocked()
}

// NotAfter returns the expiry of the server certificate in use, for an
// expiry gauge.
func (s *ServerTLS) NotAfter() time.Time {
	return s.current.Load().notAfter
}

// RejectedClients returns the number of handshakes that the
// allowed_clients check rejected.
func (s *ServerTLS) RejectedClients() uint64 {
	return s.rejectedClients.Load()
}

// maybeReload reloads when the interval has passed. Handshakes that find
// another handshake reloading go on with the current files.
func (s *ServerTLS) maybeReload() {
	if time.Now().UnixNano() < s.nextCheck.Load() {
		return
	}
	if !s.reloadMu.TryLock() {
		return
	}
	defer s.reloadMu.Unlock()
	// reloadLocked logs its own failures.
	_ = s.reloadLocked()
}

// reloadLocked must run with reloadMu held.
func (s *ServerTLS) reloadLocked() error {
	s.nextCheck.Store(time.Now().Add(s.cfg.reloadInterval()).UnixNano())
	files, digest, err := s.readFiles()
	if err != nil {
		s.logFailure(digest, err)
		return err
	}
	if digest == s.current.Load().digest {
		return nil
	}
	loaded, err := s.build(files, digest)
	if err != nil {
		s.logFailure(digest, err)
		return err
	}
	s.current.Store(loaded)
	s.log.Info("tls files reloaded", "cert_file", s.cfg.CertFile,
		"client_ca_file", s.cfg.ClientCAFile, "not_after", loaded.notAfter)
	return nil
}

// logFailure logs a failed load once per distinct file content, because
// a half-written rotation would otherwise log at every interval.
func (s *ServerTLS) logFailure(digest [sha256.Size]byte, err error) {
	if digest == s.failedDigest {
		return
	}
	s.failedDigest = digest
	s.log.Warn("tls reload failed, serving the previous certificate",
		"cert_file", s.cfg.CertFile, "error", err)
}

// tlsFiles is the raw content of the configured files.
type tlsFiles struct {
	cert, key, clientCA []byte
}

func (s *ServerTLS) readFiles() (tlsFiles, [sha256.Size]byte, error) {
	var f tlsFiles
	var err error
	if f.cert, err = os.ReadFile(s.cfg.CertFile); err != nil {
		return f, [sha256.Size]byte{}, fmt.Errorf("tls: read cert_file: %w", err)
	}
	if f.key, err = os.ReadFile(s.cfg.KeyFile); err != nil {
		return f, [sha256.Size]byte{}, fmt.Errorf("tls: read key_file: %w", err)
	}
	if s.cfg.ClientCAFile != "" {
		if f.clientCA, err = os.ReadFile(s.cfg.ClientCAFile); err != nil {
			return f, [sha256.Size]byte{}, fmt.Errorf("tls: read client_ca_file: %w", err)
		}
	}
	// The digest covers the files' lengths too, so moving bytes from one
	// file to the next cannot produce the same digest.
	h := sha256.New()
	for _, b := range [][]byte{f.cert, f.key, f.clientCA} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var digest [sha256.Size]byte
	copy(digest[:], h.Sum(nil))
	return f, digest, nil
}

// build parses the files into a server configuration.
func (s *ServerTLS) build(f tlsFiles, digest [sha256.Size]byte) (*loadedTLS, error) {
	cert, err := tls.X509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("tls: load key pair from %s and %s: %w",
			s.cfg.CertFile, s.cfg.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// Resumed sessions skip certificate verification, so a client
		// whose CA was removed from the bundle or whose identity left the
		// allow-list could return on an old ticket. Every connection does
		// a full handshake instead.
		SessionTicketsDisabled: true,
	}
	if s.cfg.clientAuth() == ClientAuthRequire {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(bytes.TrimSpace(f.clientCA)) {
			return nil, fmt.Errorf("tls: client_ca_file %s contains no PEM certificate",
				s.cfg.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if len(s.allowed) > 0 {
		cfg.VerifyConnection = s.verifyAllowed
	}
	return &loadedTLS{digest: digest, config: cfg, notAfter: cert.Leaf.NotAfter}, nil
}

// verifyAllowed rejects a verified client certificate whose SPIFFE ID and
// subject are both missing from allowed_clients.
func (s *ServerTLS) verifyAllowed(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		s.rejectedClients.Add(1)
		return errors.New("tls: no verified client certificate")
	}
	leaf := cs.VerifiedChains[0][0]
	spiffeID, err := SpiffeID(leaf)
	if err != nil {
		s.rejectedClients.Add(1)
		return err
	}
	if (spiffeID != "" && s.allowed[spiffeID]) || s.allowed[leaf.Subject.String()] {
		return nil
	}
	s.rejectedClients.Add(1)
	return fmt.Errorf("tls: client %q (SPIFFE ID %q) is not in allowed_clients",
		leaf.Subject.String(), spiffeID)
}

// SpiffeID returns the SPIFFE ID in cert's URI SANs, "" when there is
// none. It returns an error for more than one, because an X.509-SVID
// carries exactly one SPIFFE ID and two would make the identity ambiguous.
func SpiffeID(cert *x509.Certificate) (string, error) {
	id := ""
	for _, u := range cert.URIs {
		if u.Scheme != "spiffe" {
			continue
		}
		if id != "" {
			return "", fmt.Errorf("tls: certificate %q carries more than one SPIFFE ID",
				cert.Subject.String())
		}
		id = u.String()
	}
	return id, nil
}
