package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authgate/pdp/pdp"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate with the given SANs and returns it as a
// tls.Certificate.
func (ca *testCA) issue(t *testing.T, cn string, uris []string, ips []net.IP, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"example"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     []string{cn},
		IPAddresses:  ips,
	}
	for _, raw := range uris {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshake runs a real mutual TLS handshake on loopback and returns the
// client chain the server verified.
func handshake(t *testing.T, ca *testCA, client tls.Certificate) ([]*x509.Certificate, error) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	server := ca.issue(t, "pdp.example.test", nil, []net.IP{net.ParseIP("127.0.0.1")}, x509.ExtKeyUsageServerAuth)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type result struct {
		chain []*x509.Certificate
		err   error
	}
	results := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			results <- result{err: err}
			return
		}
		defer conn.Close()
		tlsConn := conn.(*tls.Conn)
		if err := tlsConn.HandshakeContext(context.Background()); err != nil {
			results <- result{err: err}
			return
		}
		results <- result{chain: tlsConn.ConnectionState().PeerCertificates}
	}()

	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		Certificates: []tls.Certificate{client},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS13,
	})
	if err == nil {
		// TLS 1.3 clients finish before the server checks their certificate;
		// reading makes the client wait for the server's verdict.
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = conn.Read(make([]byte, 1))
		conn.Close()
	}
	r := <-results
	return r.chain, r.err
}

func TestVerifyPeerMTLSHandshake(t *testing.T) {
	const spiffeID = "spiffe://example.test/ns/billing/sa/sender"
	ca := newTestCA(t)
	client := ca.issue(t, "billing.example.test", []string{spiffeID}, nil, x509.ExtKeyUsageClientAuth)
	chain, err := handshake(t, ca, client)
	if err != nil {
		t.Fatalf("mTLS handshake: %v", err)
	}
	a := newTestAuthenticator(t, Config{}, Options{})

	id, err := a.VerifyPeer(context.Background(), &pdp.Peer{Certificates: chain})
	if err != nil {
		t.Fatalf("VerifyPeer: %v", err)
	}
	if id.SpiffeID != spiffeID {
		t.Errorf("SPIFFE ID = %q, want %q", id.SpiffeID, spiffeID)
	}
	if id.Method != "mtls" || !id.Verified {
		t.Errorf("method = %q verified = %v, want mtls true", id.Method, id.Verified)
	}
	if id.CertSubject != "CN=billing.example.test,O=example" {
		t.Errorf("subject = %q", id.CertSubject)
	}
	if len(id.DNSNames) != 1 || id.DNSNames[0] != "billing.example.test" {
		t.Errorf("DNS names = %v", id.DNSNames)
	}
	if len(id.URIs) != 1 || id.URIs[0] != spiffeID {
		t.Errorf("URIs = %v", id.URIs)
	}

	_, err = a.VerifyPeer(context.Background(), &pdp.Peer{Certificates: chain,
		Principal: "spiffe://example.test/ns/other/sa/x"})
	if reasonOf(err) != pdp.ReasonIdentityForbidden {
		t.Errorf("mismatching principal: reason = %q, want identity.forbidden", reasonOf(err))
	}
}

func TestVerifyPeerUntrustedClient(t *testing.T) {
	ca, rogue := newTestCA(t), newTestCA(t)
	client := rogue.issue(t, "mallory", []string{"spiffe://example.test/mallory"}, nil, x509.ExtKeyUsageClientAuth)
	if _, err := handshake(t, ca, client); err == nil {
		t.Fatal("handshake with a certificate from another CA succeeded")
	}
}

func TestVerifyPeerTwoSpiffeIDs(t *testing.T) {
	ca := newTestCA(t)
	client := ca.issue(t, "dual", []string{"spiffe://example.test/a", "spiffe://example.test/b"}, nil,
		x509.ExtKeyUsageClientAuth)
	leaf, err := x509.ParseCertificate(client.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAuthenticator(t, Config{}, Options{})
	_, err = a.VerifyPeer(context.Background(), &pdp.Peer{Certificates: []*x509.Certificate{leaf}})
	if reasonOf(err) != pdp.ReasonIdentityForbidden {
		t.Fatalf("reason = %q, want identity.forbidden (%v)", reasonOf(err), err)
	}
}

func TestVerifyPeerPrincipal(t *testing.T) {
	a := newTestAuthenticator(t, Config{}, Options{})
	tests := []struct {
		principal string
		spiffe    string
		subject   string
		want      pdp.Reason
	}{
		{"spiffe://example.test/ns/billing/sa/sender", "spiffe://example.test/ns/billing/sa/sender", "", ""},
		{"CN=billing,O=example", "", "CN=billing,O=example", ""},
		{"spiffe://Example.test/x", "", "", pdp.ReasonIdentityForbidden},
		{"spiffe://example.test/a/../b", "", "", pdp.ReasonIdentityForbidden},
		{"spiffe://example.test/a?x=1", "", "", pdp.ReasonIdentityForbidden},
		{"spiffe://example.test:8443/a", "", "", pdp.ReasonIdentityForbidden},
		{"", "", "", pdp.ReasonIdentityMissing},
	}
	for _, tt := range tests {
		t.Run(tt.principal, func(t *testing.T) {
			id, err := a.VerifyPeer(context.Background(), &pdp.Peer{Principal: tt.principal})
			if got := reasonOf(err); got != tt.want {
				t.Fatalf("reason = %q, want %q (%v)", got, tt.want, err)
			}
			if err != nil {
				return
			}
			if id.SpiffeID != tt.spiffe || id.CertSubject != tt.subject {
				t.Errorf("SPIFFE ID = %q subject = %q, want %q %q", id.SpiffeID, id.CertSubject, tt.spiffe, tt.subject)
			}
		})
	}
}

func TestParsePeerCertificate(t *testing.T) {
	ca := newTestCA(t)
	client := ca.issue(t, "billing", []string{"spiffe://example.test/billing"}, nil, x509.ExtKeyUsageClientAuth)
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: client.Certificate[0]}))
	// Envoy's encoding escapes every reserved character, "+" and "/" too.
	encoded := url.QueryEscape(certPEM)
	encoded = strings.ReplaceAll(encoded, "+", "%20")

	for name, value := range map[string]string{"plain": encoded, "quoted": `"` + encoded + `"`} {
		t.Run(name, func(t *testing.T) {
			cert, err := ParsePeerCertificate(value)
			if err != nil {
				t.Fatalf("ParsePeerCertificate: %v", err)
			}
			if cert.Subject.CommonName != "billing" {
				t.Errorf("common name = %q", cert.Subject.CommonName)
			}
		})
	}

	bad := map[string]string{
		"not PEM":       "hello",
		"two blocks":    url.PathEscape(certPEM + certPEM),
		"private key":   url.PathEscape("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		"bad escape":    "%zz",
		"too large":     strings.Repeat("A", maxPeerCertificateSize+1),
		"garbage bytes": url.PathEscape("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
	}
	for name, value := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := ParsePeerCertificate(value); err == nil {
				t.Error("ParsePeerCertificate accepted it")
			}
		})
	}
}
