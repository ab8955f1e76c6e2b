package transport

import (
	"context"
	"crypto/tls"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/authgate/pdp/pdp"
)

// PeerFromState returns the verified client certificate chain of a TLS
// connection as a *pdp.Peer, or nil when the client presented no
// certificate that the CA bundle verified. Only VerifiedChains is used:
// PeerCertificates may hold unverified certificates when client_auth is
// none.
func PeerFromState(cs *tls.ConnectionState) *pdp.Peer {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	chain := cs.VerifiedChains[0]
	return &pdp.Peer{Certificates: chain}
}

// PeerFromGRPC returns the verified client certificate chain of the gRPC
// call in ctx, or nil when the connection is not TLS or carries no
// verified client certificate.
func PeerFromGRPC(ctx context.Context) *pdp.Peer {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil
	}
	return PeerFromState(&info.State)
}
