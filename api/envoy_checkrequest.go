package api

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/authgate/pdp/pdp"
)

// checkRequestToRequest maps an Envoy v3 CheckRequest to a pdp.Request.
// input.attributes is the protojson form of CheckRequest.attributes, the
// shape OPA's Envoy plugin gives policies. The body is
// attributes.request.http.body, or raw_body when body is empty (Envoy sends
// raw_body when pack_as_bytes is set).
//
// It returns a request even with an error, holding what could be read, so
// the denial is audited with it. Errors carry request.invalid or
// request.too_large.
func (c *Config) checkRequestToRequest(cr *authv3.CheckRequest, maxBody int64) (*pdp.Request, error) {
	req := &pdp.Request{FrontDoor: pdp.FrontDoorEnvoyGRPC, Context: map[string]any{}}
	attrs := cr.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	if h == nil {
		return req, pdp.Denyf(pdp.ReasonRequestInvalid, "check request has no attributes.request.http")
	}

	headers := checkRequestHeaders(h)
	body := []byte(h.GetBody())
	if len(body) == 0 {
		body = h.GetRawBody()
	}
	req.HTTP = &pdp.HTTPRequest{
		ID: h.GetId(), Method: h.GetMethod(), Scheme: h.GetScheme(), Host: h.GetHost(),
		Protocol: h.GetProtocol(), Path: h.GetPath(), Headers: headers, Size: h.GetSize(),
	}
	if sock := attrs.GetSource().GetAddress().GetSocketAddress(); sock != nil {
		req.HTTP.SourceAddress = sock.GetAddress()
		req.HTTP.SourcePort = sock.GetPortValue()
	}
	req.Action = pdp.Action{Name: req.HTTP.Method}
	if target, err := pdp.ParseTarget(req.HTTP.Path); err == nil {
		req.Resource = pdp.Resource{Type: "route", ID: target.Path()}
	}

	if maxBody > 0 && int64(len(body)) > maxBody {
		return req, pdp.Denyf(pdp.ReasonRequestTooLarge, "body of %d bytes exceeds %d", len(body), maxBody)
	}
	req.HTTP.Body = body

	attributes, err := attributesJSON(cr)
	if err != nil {
		return req, pdp.Deny(pdp.ReasonRequestInvalid, err)
	}
	req.Attributes = attributes

	peer, err := sourcePeer(attrs.GetSource().GetPrincipal(), attrs.GetSource().GetCertificate())
	if err != nil {
		return req, pdp.Deny(pdp.ReasonRequestInvalid, err)
	}
	req.Peer = peer
	req.Token = c.requestToken(headers)
	req.Message = c.signedMessage(headers, body, pdp.BodyTruncated(req.HTTP))
	return req, nil
}

// checkRequestHeaders returns the request headers with lower-cased names.
// Envoy sends them in headers, or in header_map when encode_raw_headers is
// set; repeated header_map entries are joined with ",".
func checkRequestHeaders(h *authv3.AttributeContext_HttpRequest) map[string]string {
	out := make(map[string]string, len(h.GetHeaders()))
	for k, v := range h.GetHeaders() {
		out[strings.ToLower(k)] = v
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		name := strings.ToLower(hv.GetKey())
		value := hv.GetValue()
		if len(hv.GetRawValue()) > 0 {
			value = string(hv.GetRawValue())
		}
		if prev, ok := out[name]; ok {
			value = prev + "," + value
		}
		out[name] = value
	}
	return out
}

// attributesJSON returns CheckRequest.attributes in protojson form as a
// Rego value, numbers kept as their JSON text.
func attributesJSON(cr *authv3.CheckRequest) (ast.Value, error) {
	b, err := protojson.Marshal(cr.GetAttributes())
	if err != nil {
		return nil, fmt.Errorf("encode attributes: %w", err)
	}
	v, err := parseJSONValue(b)
	if err != nil {
		return nil, fmt.Errorf("decode attributes: %w", err)
	}
	return v, nil
}

// sourcePeer returns the peer Envoy asserts: the source principal (usually
// a SPIFFE ID from the client certificate) and the certificate itself,
// which Envoy sends URL-encoded in PEM form. It returns nil when neither is
// set and an error for a certificate that does not parse.
func sourcePeer(principal, certificate string) (*pdp.Peer, error) {
	if principal == "" && certificate == "" {
		return nil, nil
	}
	peer := &pdp.Peer{Principal: principal}
	if certificate == "" {
		return peer, nil
	}
	certs, err := parseURLEncodedPEM(certificate)
	if err != nil {
		return nil, fmt.Errorf("source certificate: %w", err)
	}
	peer.Certificates = certs
	return peer, nil
}

// parseURLEncodedPEM parses one or more PEM certificates, URL-encoded as
// Envoy forwards them (also in x-forwarded-client-cert).
func parseURLEncodedPEM(s string) ([]*x509.Certificate, error) {
	decoded, err := url.QueryUnescape(s)
	if err != nil {
		return nil, fmt.Errorf("URL-decode: %w", err)
	}
	rest := []byte(decoded)
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}
