package pdp

import (
	"context"
	"errors"
	"slices"
	"time"
)

// authenticate runs the token and mTLS checks the route requires. A token
// is verified whenever the route names a token requirement; routes without
// one ignore tokens.
func (e *Engine) authenticate(ctx context.Context, req *Request, st *decisionState) error {
	tokenRule := st.route.Token
	if tokenRule.Required || len(tokenRule.Issuers) > 0 {
		id, err := e.verifyToken(ctx, req.Token, tokenRule)
		if err != nil {
			return err
		}
		st.identity = id
	}

	peer, err := e.verifyPeer(ctx, req.Peer, st.route.MTLS)
	if err != nil {
		return err
	}
	st.identity = mergeIdentity(st.identity, peer)
	return nil
}

func (e *Engine) verifyToken(ctx context.Context, token string, rule TokenRequirement) (*Identity, error) {
	if token == "" {
		if rule.Required {
			return nil, Deny(ReasonTokenMissing, errors.New("no bearer token"))
		}
		return nil, nil
	}
	if e.opts.Authenticator == nil {
		return nil, Deny(ReasonTokenInvalid, errors.New("no token issuers are configured"))
	}
	id, err := e.opts.Authenticator.VerifyToken(ctx, token, rule.Issuers)
	if err != nil {
		return nil, Deny(ReasonOf(err, ReasonTokenInvalid), err)
	}
	return id, nil
}

func (e *Engine) verifyPeer(ctx context.Context, peer *Peer, rule MTLSRequirement) (*Identity, error) {
	var id *Identity
	if peer != nil && e.opts.Authenticator != nil {
		var err error
		id, err = e.opts.Authenticator.VerifyPeer(ctx, peer)
		if err != nil && rule.Required {
			return nil, Deny(ReasonOf(err, ReasonIdentityMissing), err)
		}
	}
	if !rule.Required {
		return id, nil
	}
	if id == nil {
		return nil, Deny(ReasonIdentityMissing, errors.New("no verified peer identity"))
	}
	if len(rule.Allowed) > 0 && !slices.Contains(rule.Allowed, id.SpiffeID) &&
		!slices.Contains(rule.Allowed, id.CertSubject) {
		return nil, Denyf(ReasonIdentityForbidden, "peer %q is not allowed on this route", id.SpiffeID)
	}
	return id, nil
}

// mergeIdentity adds the transport facts of peer to a token identity.
func mergeIdentity(token, peer *Identity) *Identity {
	if peer == nil {
		return token
	}
	if token == nil {
		return peer
	}
	merged := *token
	merged.SpiffeID = peer.SpiffeID
	merged.CertSubject = peer.CertSubject
	merged.DNSNames = peer.DNSNames
	merged.URIs = peer.URIs
	return &merged
}

func (e *Engine) verifyMessage(ctx context.Context, req *Request, st *decisionState) error {
	rule := st.route.Message
	if !rule.Required {
		return nil
	}
	if req.Message == nil {
		return Deny(ReasonSignatureMissing, errors.New("no signed message"))
	}
	if e.opts.Messages == nil {
		return Deny(ReasonSignatureInvalid, errors.New("no message senders are configured"))
	}
	msg, err := e.opts.Messages.Verify(ctx, req.Message, rule)
	if err != nil {
		return Deny(ReasonOf(err, ReasonSignatureInvalid), err)
	}
	st.message = msg
	return nil
}

// checkReplay runs after signature verification, so a forger cannot burn
// another sender's nonces or sequence numbers.
func (e *Engine) checkReplay(ctx context.Context, st *decisionState) error {
	msg := st.message
	if msg == nil {
		return nil
	}
	if e.opts.Replay == nil {
		return Deny(ReasonStateUnavailable, errors.New("no replay store is configured"))
	}
	err := e.opts.Replay.Check(ctx, ReplayCheck{
		Sender: msg.Sender, Channel: msg.Channel, Nonce: msg.ID,
		Timestamp: time.Unix(msg.Timestamp, 0), Sequence: msg.Sequence, HasSequence: msg.HasSequence,
	})
	if err != nil {
		return Deny(ReasonOf(err, ReasonStateUnavailable), err)
	}
	msg.Replay = "fresh"
	return nil
}
