package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	stdlog "log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	allowedSpiffeID   = "spiffe://example.test/ns/gateway/sa/envoy"
	forbiddenSpiffeID = "spiffe://example.test/ns/other/sa/intruder"
	allowedSubject    = "CN=nginx,O=Example"
)

// testCA is a certificate authority generated for one test.
type testCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	pem    []byte
	serial int64
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA %s: %v", name, err)
	}
	return &testCA{cert: cert, key: key, serial: 1,
		pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return key
}

// issued is a leaf certificate with its key, in PEM and as tls.Certificate.
type issued struct {
	certPEM, keyPEM []byte
	tls             tls.Certificate
	serial          int64
}

// issue signs a leaf: a server certificate for 127.0.0.1 when server is
// true, else a client certificate with the given subject and SPIFFE ID.
func (ca *testCA) issue(t *testing.T, server bool, subject pkix.Name, spiffeID string) issued {
	t.Helper()
	ca.serial++
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	if spiffeID != "" {
		u, err := url.Parse(spiffeID)
		if err != nil {
			t.Fatalf("parse SPIFFE ID: %v", err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("issue certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	out := issued{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		serial:  ca.serial,
	}
	out.tls, err = tls.X509KeyPair(out.certPEM, out.keyPEM)
	if err != nil {
		t.Fatalf("load issued key pair: %v", err)
	}
	return out
}

// writeFile replaces path atomically, as a secret rotation would.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("rename %s: %v", tmp, err)
	}
}

// testServer is an HTTPS server on loopback that responds with 200 and the
// SPIFFE ID that PeerFromState found.
type testServer struct {
	addr string
	tls  *ServerTLS
	cfg  TLSConfig
}

func startServer(t *testing.T, ca *testCA, server issued, allowed []string) *testServer {
	t.Helper()
	dir := t.TempDir()
	cfg := TLSConfig{
		CertFile:       filepath.Join(dir, "server.pem"),
		KeyFile:        filepath.Join(dir, "server.key"),
		ClientCAFile:   filepath.Join(dir, "clients-ca.pem"),
		AllowedClients: allowed,
		ReloadInterval: time.Millisecond,
	}
	writeFile(t, cfg.CertFile, server.certPEM)
	writeFile(t, cfg.KeyFile, server.keyPEM)
	writeFile(t, cfg.ClientCAFile, ca.pem)

	st, err := NewServerTLS(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("NewServerTLS: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := PeerFromState(r.TLS)
			if p == nil {
				http.Error(w, "no peer", http.StatusInternalServerError)
				return
			}
			id, _ := SpiffeID(p.Certificates[0])
			_, _ = io.WriteString(w, id)
		}),
		ErrorLog: stdlog.New(io.Discard, "", 0),
	}
	go func() { _ = srv.Serve(tls.NewListener(l, st.Config("http/1.1"))) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &testServer{addr: l.Addr().String(), tls: st, cfg: cfg}
}

// get makes one request on a new connection and returns the status and
// body, or the error of the handshake or request.
func (s *testServer) get(t *testing.T, roots *x509.CertPool, client *tls.Certificate,
	maxVersion uint16) (int, string, error) {
	t.Helper()
	clientTLS := &tls.Config{RootCAs: roots, MaxVersion: maxVersion}
	if client != nil {
		// GetClientCertificate sends the certificate even when its CA is
		// not among those the server requests, as a hostile client would.
		clientTLS.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return client, nil
		}
	}
	hc := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: clientTLS, DisableKeepAlives: true},
	}
	resp, err := hc.Get("https://" + s.addr + "/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func TestServerTLSClientChecks(t *testing.T) {
	ca := newTestCA(t, "clients and server CA")
	otherCA := newTestCA(t, "other CA")
	srv := startServer(t, ca, ca.issue(t, true, pkix.Name{CommonName: "pdp"}, ""),
		[]string{allowedSpiffeID, allowedSubject})
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	allowed := ca.issue(t, false, pkix.Name{CommonName: "envoy"}, allowedSpiffeID)
	bySubject := ca.issue(t, false, pkix.Name{CommonName: "nginx", Organization: []string{"Example"}}, "")
	forbidden := ca.issue(t, false, pkix.Name{CommonName: "intruder"}, forbiddenSpiffeID)
	foreign := otherCA.issue(t, false, pkix.Name{CommonName: "envoy"}, allowedSpiffeID)

	cases := []struct {
		name       string
		client     *tls.Certificate
		maxVersion uint16
		wantErr    string
		wantBody   string
	}{
		{"TLS 1.2 client rejected", &allowed.tls, tls.VersionTLS12, "protocol version", ""},
		{"no client certificate rejected", nil, 0, "certificate required", ""},
		{"other CA rejected", &foreign.tls, 0, "unknown certificate authority", ""},
		{"forbidden SPIFFE ID rejected", &forbidden.tls, 0, "bad certificate", ""},
		{"allowed SPIFFE ID served", &allowed.tls, 0, "", allowedSpiffeID},
		{"allowed subject served", &bySubject.tls, 0, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, err := srv.get(t, roots, tc.client, tc.maxVersion)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("request succeeded with status %d, want error containing %q",
						status, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("request failed: %v", err)
			}
			if status != http.StatusOK {
				t.Errorf("status = %d, want 200", status)
			}
			if body != tc.wantBody {
				t.Errorf("peer SPIFFE ID = %q, want %q", body, tc.wantBody)
			}
		})
	}
	if got := srv.tls.RejectedClients(); got != 1 {
		t.Errorf("RejectedClients() = %d, want 1 (the forbidden SPIFFE ID)", got)
	}
}

// serverSerial completes a handshake and returns the serial number of the
// server certificate presented.
func serverSerial(t *testing.T, addr string, roots *x509.CertPool, client issued) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{client.tls},
	})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestServerTLSReloadsCertificate(t *testing.T) {
	ca := newTestCA(t, "CA")
	first := ca.issue(t, true, pkix.Name{CommonName: "pdp-1"}, "")
	srv := startServer(t, ca, first, nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := ca.issue(t, false, pkix.Name{CommonName: "gateway"}, allowedSpiffeID)

	if got := serverSerial(t, srv.addr, roots, client); got != first.serial {
		t.Fatalf("first handshake serial = %d, want %d", got, first.serial)
	}

	// A half-written rotation (garbage key) keeps the old certificate.
	writeFile(t, srv.cfg.KeyFile, []byte("not a key"))
	if err := srv.tls.Reload(); err == nil {
		t.Fatal("Reload with a broken key file: err = nil, want an error")
	}
	if got := serverSerial(t, srv.addr, roots, client); got != first.serial {
		t.Errorf("after a broken rotation serial = %d, want the old %d", got, first.serial)
	}

	// The full rotation is picked up by a later handshake, with no call to
	// Reload, once the 1ms reload interval has passed.
	second := ca.issue(t, true, pkix.Name{CommonName: "pdp-2"}, "")
	writeFile(t, srv.cfg.CertFile, second.certPEM)
	writeFile(t, srv.cfg.KeyFile, second.keyPEM)
	var got int64
	for attempt := 0; attempt < 200 && got != second.serial; attempt++ {
		got = serverSerial(t, srv.addr, roots, client)
	}
	if got != second.serial {
		t.Fatalf("after rotation serial = %d, want %d", got, second.serial)
	}
	if !srv.tls.NotAfter().Equal(second.tls.Leaf.NotAfter) {
		t.Errorf("NotAfter() = %v, want the new certificate's %v",
			srv.tls.NotAfter(), second.tls.Leaf.NotAfter)
	}
}

func TestPeerFromStateWithoutChain(t *testing.T) {
	if p := PeerFromState(nil); p != nil {
		t.Errorf("PeerFromState(nil) = %v, want nil", p)
	}
	unverified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{}}}
	if p := PeerFromState(unverified); p != nil {
		t.Errorf("PeerFromState(unverified certificate) = %v, want nil", p)
	}
}

func TestSpiffeIDTwoURIsRejected(t *testing.T) {
	a, _ := url.Parse(allowedSpiffeID)
	b, _ := url.Parse(forbiddenSpiffeID)
	_, err := SpiffeID(&x509.Certificate{URIs: []*url.URL{a, b}})
	if err == nil {
		t.Fatal("SpiffeID with two SPIFFE URIs: err = nil, want an error")
	}
}

func TestTLSConfigValidate(t *testing.T) {
	cases := []struct {
		name    string
		cfg     TLSConfig
		wantErr string
	}{
		{"off", TLSConfig{}, ""},
		{"server only", TLSConfig{CertFile: "c", KeyFile: "k"}, ""},
		{"mutual", TLSConfig{CertFile: "c", KeyFile: "k", ClientCAFile: "ca",
			AllowedClients: []string{allowedSpiffeID, allowedSubject}}, ""},
		{"key without cert", TLSConfig{KeyFile: "k"}, "cert_file"},
		{"cert without key", TLSConfig{CertFile: "c"}, "key_file"},
		{"require without CA", TLSConfig{CertFile: "c", KeyFile: "k", ClientAuth: "require"},
			"client_ca_file"},
		{"none with CA", TLSConfig{CertFile: "c", KeyFile: "k", ClientAuth: "none",
			ClientCAFile: "ca"}, "client_auth"},
		{"allow-list without client auth", TLSConfig{CertFile: "c", KeyFile: "k",
			AllowedClients: []string{allowedSpiffeID}}, "allowed_clients"},
		{"unknown client auth", TLSConfig{CertFile: "c", KeyFile: "k", ClientAuth: "optional"},
			"client_auth"},
		{"malformed SPIFFE ID", TLSConfig{CertFile: "c", KeyFile: "k", ClientCAFile: "ca",
			AllowedClients: []string{"spiffe://"}}, "allowed_clients[0]"},
		{"negative interval", TLSConfig{CertFile: "c", KeyFile: "k", ReloadInterval: -1},
			"reload_interval"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate() = %v, want an error naming %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidateListener(t *testing.T) {
	cases := []struct {
		addr    string
		cfg     TLSConfig
		wantErr bool
	}{
		{"127.0.0.1:8181", TLSConfig{}, false},
		{"[::1]:8181", TLSConfig{}, false},
		{"localhost:8181", TLSConfig{}, false},
		{"0.0.0.0:8181", TLSConfig{}, true},
		{":8181", TLSConfig{}, true},
		{"10.0.0.7:8181", TLSConfig{}, true},
		{"0.0.0.0:8181", TLSConfig{CertFile: "c", KeyFile: "k"}, false},
		{"no-port", TLSConfig{}, true},
	}
	for _, tc := range cases {
		err := ValidateListener(tc.addr, tc.cfg)
		if (err != nil) != tc.wantErr {
			t.Errorf("ValidateListener(%q, TLS %v) = %v, want error %v",
				tc.addr, tc.cfg.Enabled(), err, tc.wantErr)
		}
	}
}

func TestNewServerTLSMissingFile(t *testing.T) {
	dir := t.TempDir()
	_, err := NewServerTLS(TLSConfig{
		CertFile: filepath.Join(dir, "missing.pem"), KeyFile: filepath.Join(dir, "missing.key"),
	}, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewServerTLS with missing files: err = %v, want os.ErrNotExist", err)
	}
}
