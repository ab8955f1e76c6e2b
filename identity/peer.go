package identity

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/authgate/pdp/pdp"
)

// maxPeerCertificateSize bounds the URL-encoded PEM accepted by
// ParsePeerCertificate.
const maxPeerCertificateSize = 64 << 10

// VerifyPeer derives an mTLS identity from the peer's certificate chain,
// which the TLS layer (ours or the gateway's) has already verified, or from
// the principal a gateway asserts. When both are present and the
// principal is a SPIFFE ID, it must equal the certificate's. A certificate
// with more than one SPIFFE ID is rejected with identity.forbidden.
func (a *Authenticator) VerifyPeer(_ context.Context, peer *pdp.Peer) (*pdp.Identity, error) {
	if peer == nil || (len(peer.Certificates) == 0 && peer.Principal == "") {
		return nil, pdp.Deny(pdp.ReasonIdentityMissing, errors.New("no peer certificate or principal"))
	}
	if len(peer.Certificates) == 0 {
		return principalIdentity(peer.Principal)
	}

	leaf := peer.Certificates[0]
	id, err := certificateIdentity(leaf)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(peer.Principal, "spiffe://") && peer.Principal != id.SpiffeID {
		return nil, pdp.Denyf(pdp.ReasonIdentityForbidden,
			"gateway principal %q differs from the certificate SPIFFE ID %q", peer.Principal, id.SpiffeID)
	}
	return id, nil
}

func certificateIdentity(cert *x509.Certificate) (*pdp.Identity, error) {
	id := &pdp.Identity{
		Verified:    true,
		Method:      "mtls",
		CertSubject: cert.Subject.String(),
		DNSNames:    cert.DNSNames,
	}
	for _, u := range cert.URIs {
		id.URIs = append(id.URIs, u.String())
		if u.Scheme != "spiffe" {
			continue
		}
		// X.509-SVID (SPIFFE standard, section 2) allows exactly one SPIFFE
		// ID; a second one makes the identity ambiguous.
		if id.SpiffeID != "" {
			return nil, pdp.Denyf(pdp.ReasonIdentityForbidden,
				"certificate %q carries more than one SPIFFE ID", id.CertSubject)
		}
		if err := checkSpiffeID(u); err != nil {
			return nil, pdp.Deny(pdp.ReasonIdentityForbidden, err)
		}
		id.SpiffeID = u.String()
	}
	return id, nil
}

// principalIdentity builds an identity from a gateway-asserted principal:
// a SPIFFE ID or, as Envoy reports for certificates without a URI SAN, the
// certificate subject.
func principalIdentity(principal string) (*pdp.Identity, error) {
	id := &pdp.Identity{Verified: true, Method: "mtls"}
	if !strings.HasPrefix(principal, "spiffe://") {
		id.CertSubject = principal
		return id, nil
	}
	u, err := url.Parse(principal)
	if err != nil {
		return nil, pdp.Denyf(pdp.ReasonIdentityForbidden, "principal is not a valid SPIFFE ID: %v", err)
	}
	if err := checkSpiffeID(u); err != nil {
		return nil, pdp.Deny(pdp.ReasonIdentityForbidden, err)
	}
	id.SpiffeID = principal
	id.URIs = []string{principal}
	return id, nil
}

// checkSpiffeID applies the SPIFFE ID rules (SPIFFE-ID standard, section
// 2): a lower-case trust domain of letters, digits, ".", "-" and "_", no
// user info, port, query or fragment, and a path of non-empty segments
// that are not "." or "..".
func checkSpiffeID(u *url.URL) error {
	if u.Scheme != "spiffe" || u.Opaque != "" || u.User != nil || u.Port() != "" ||
		u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Errorf("SPIFFE ID %q is malformed", u.String())
	}
	td := u.Host
	if td == "" {
		return fmt.Errorf("SPIFFE ID %q has no trust domain", u.String())
	}
	for _, c := range td {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("SPIFFE ID %q has an invalid trust domain", u.String())
		}
	}
	if u.Path == "" {
		return nil
	}
	if u.RawPath != "" {
		return fmt.Errorf("SPIFFE ID %q has percent-encoded path characters", u.String())
	}
	for _, seg := range strings.Split(strings.TrimPrefix(u.Path, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("SPIFFE ID %q has an empty, . or .. path segment", u.String())
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
				c == '.' || c == '-' || c == '_') {
				return fmt.Errorf("SPIFFE ID %q has an invalid path character", u.String())
			}
		}
	}
	return nil
}

// ParsePeerCertificate parses a certificate forwarded by Envoy as
// URL-encoded PEM: the Cert= field of x-forwarded-client-cert (quotes
// around the value are removed) or CheckRequest source.certificate. It
// reads exactly one CERTIFICATE block. The certificate is not verified
// here: the caller must trust the gateway that forwarded it.
func ParsePeerCertificate(urlEncodedPEM string) (*x509.Certificate, error) {
	if len(urlEncodedPEM) > maxPeerCertificateSize {
		return nil, fmt.Errorf("peer certificate is larger than %d bytes", maxPeerCertificateSize)
	}
	value := urlEncodedPEM
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	// PathUnescape, unlike QueryUnescape, keeps "+" (a base64 character).
	decoded, err := url.PathUnescape(value)
	if err != nil {
		return nil, fmt.Errorf("peer certificate is not URL-encoded PEM: %w", err)
	}
	block, rest := pem.Decode([]byte(decoded))
	if block == nil {
		return nil, errors.New("peer certificate contains no PEM block")
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("peer certificate PEM block is %q, expected CERTIFICATE", block.Type)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("peer certificate has data after the first PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse peer certificate: %w", err)
	}
	return cert, nil
}
