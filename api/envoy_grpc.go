package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/telemetry"
)

// authorizationService is the full name of Envoy's ext_authz v3 service, as
// reported by the gRPC health service.
const authorizationService = "envoy.service.auth.v3.Authorization"

// grpcHeadroom is the room above MaxBodyBytes that a CheckRequest may use
// for headers and attributes before gRPC itself rejects it.
const grpcHeadroom = 1 << 20

// minGRPCMessageBytes is grpc-go's default maximum received message size,
// kept as the lower bound.
const minGRPCMessageBytes = 4 << 20

// GRPCOptions configure the Envoy ext_authz gRPC server.
type GRPCOptions struct {
	// Engine decides each Check.
	Engine Decider
	// Gateway is the gateway configuration (identity headers, signature
	// header).
	Gateway Config
	// MaxBodyBytes caps the forwarded body; a larger one is denied with
	// request.too_large. 0 means 1 MiB. The gRPC receive limit is set
	// MaxBodyBytes + 1 MiB (at least 4 MiB) above it, and a CheckRequest
	// beyond that is rejected by gRPC itself with RESOURCE_EXHAUSTED, so
	// Envoy's with_request_body.max_request_bytes must stay below
	// MaxBodyBytes.
	MaxBodyBytes int64
	// Health, when set, is the health service to register, so the caller
	// can report NOT_SERVING while draining. Nil registers a new one that
	// reports SERVING.
	Health *health.Server
	// ServerOptions are added to the gRPC server's options (TLS
	// credentials, keepalive).
	ServerOptions []grpc.ServerOption
	// Limits, when set, sheds Checks beyond its concurrency limit and
	// rejects oversized metadata; each such Check gets a denial
	// CheckResponse with the limit's reason code.
	Limits *Limits
	Logger *slog.Logger
}

// NewGRPCServer returns a gRPC server with Envoy's
// envoy.service.auth.v3.Authorization service, the grpc.health.v1 health
// service and server reflection registered. The caller serves it on its
// listener (grpc.Server.Serve) and stops it with GracefulStop.
//
// Every Check returns a CheckResponse, never a gRPC error: a deny,
// including a policy error, unavailable replay state or a panic in the
// handler, is a PERMISSION_DENIED status with a DeniedHttpResponse, because
// Envoy's failure_mode_allow would let a request through on an error.
func NewGRPCServer(opts GRPCOptions) *grpc.Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	maxMsg := max(opts.MaxBodyBytes+grpcHeadroom, minGRPCMessageBytes)
	if maxMsg > math.MaxInt32 {
		maxMsg = math.MaxInt32
	}
	authz := &authorizationServer{
		engine: opts.Engine, cfg: opts.Gateway.withDefaults(),
		maxBody: opts.MaxBodyBytes, log: opts.Logger,
	}

	interceptors := []grpc.UnaryServerInterceptor{authz.recoverCheck}
	if opts.Limits != nil {
		interceptors = append(interceptors, opts.Limits.UnaryServerInterceptor(authz.rejectByLimits))
	}
	serverOpts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(maxMsg)),
		grpc.ChainUnaryInterceptor(interceptors...),
	}, opts.ServerOptions...)
	s := grpc.NewServer(serverOpts...)
	authv3.RegisterAuthorizationServer(s, authz)

	hs := opts.Health
	if hs == nil {
		hs = health.NewServer()
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(authorizationService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	return s
}

// authorizationServer implements Envoy's ext_authz v3 Authorization service.
type authorizationServer struct {
	authv3.UnimplementedAuthorizationServer
	engine  Decider
	cfg     Config
	maxBody int64
	log     *slog.Logger
}

var _ authv3.AuthorizationServer = (*authorizationServer)(nil)

// Check decides one request Envoy forwarded.
func (a *authorizationServer) Check(ctx context.Context, cr *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	// Envoy's own span context, from gRPC metadata, takes precedence over
	// the one the client sent in the original request's headers.
	ctx = telemetry.ExtractFromHeaders(ctx, cr.GetAttributes().GetRequest().GetHttp().GetHeaders())
	ctx = telemetry.ExtractGRPC(ctx)
	req, err := a.cfg.checkRequestToRequest(cr, a.maxBody)
	var d pdp.Decision
	if err != nil {
		d = a.engine.Reject(ctx, req, pdp.ReasonOf(err, pdp.ReasonRequestInvalid), err)
	} else {
		d = a.engine.Decide(ctx, req)
	}
	return a.checkResponse(&d), nil
}

// recoverCheck turns a panic in Check into a denial, so Envoy never receives a
// gRPC error for it. Other methods panic as usual.
func (a *authorizationServer) recoverCheck(ctx context.Context, req any, info *grpc.UnaryServerInfo,
	handler grpc.UnaryHandler) (resp any, err error) {
	if info.FullMethod != authv3.Authorization_Check_FullMethodName {
		return handler(ctx, req)
	}
	defer func() {
		if r := recover(); r != nil {
			d := a.engine.Reject(ctx, &pdp.Request{FrontDoor: pdp.FrontDoorEnvoyGRPC},
				pdp.ReasonPolicyError, fmt.Errorf("check panicked: %v", r))
			a.log.Error("check panicked", "decision_id", d.ID, "error", fmt.Sprint(r),
				"stack", string(debug.Stack()))
			d.HTTPStatus = http.StatusForbidden
			resp, err = a.checkResponse(&d), nil
		}
	}()
	return handler(ctx, req)
}

// rejectByLimits responds to a Check that the limits rejected with a denial
// carrying the limit's reason code. The rejection is audited like any
// decision, so the decision id it names has its record.
func (a *authorizationServer) rejectByLimits(ctx context.Context, info *grpc.UnaryServerInfo,
	reason pdp.Reason) (any, error) {
	if info.FullMethod != authv3.Authorization_Check_FullMethodName {
		return nil, nil
	}
	d := a.engine.Reject(ctx, &pdp.Request{FrontDoor: pdp.FrontDoorEnvoyGRPC}, reason,
		errors.New("rejected by the request limits"))
	return a.deniedResponse(&d), nil
}

// checkResponse translates a decision into a CheckResponse. An allow whose
// extra fields cannot be translated becomes a deny with policy.error.
func (a *authorizationServer) checkResponse(d *pdp.Decision) *authv3.CheckResponse {
	if d.Allow {
		resp, err := a.okResponse(d)
		if err == nil {
			return resp
		}
		a.log.Error("policy result cannot be sent to envoy", "decision_id", d.ID, "error", err)
		*d = policyErrorDeny(d)
	}
	return a.deniedResponse(d)
}

func (a *authorizationServer) okResponse(d *pdp.Decision) (*authv3.CheckResponse, error) {
	ch, err := a.cfg.allowChanges(d)
	if err != nil {
		return nil, err
	}
	md, err := dynamicMetadata(d)
	if err != nil {
		return nil, err
	}
	ok := &authv3.OkHttpResponse{
		Headers:                 replaceHeaderOptions(ch.set),
		HeadersToRemove:         ch.remove,
		ResponseHeadersToAdd:    appendHeaderOptions(ch.responseAdd),
		QueryParametersToRemove: ch.queryRemove,
	}
	for _, q := range ch.querySet {
		ok.QueryParametersToSet = append(ok.QueryParametersToSet,
			&corev3.QueryParameter{Key: q.name, Value: q.value})
	}
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: md,
	}, nil
}

// deniedResponse builds a PERMISSION_DENIED response. A deny the policy
// decided keeps the policy's body, empty when it set none, as OPA's Envoy
// plugin does; any other deny gets the JSON error body.
func (a *authorizationServer) deniedResponse(d *pdp.Decision) *authv3.CheckResponse {
	status := denyStatus(d)
	if _, ok := typev3.StatusCode_name[int32(status)]; !ok {
		status = http.StatusForbidden
	}
	headers := make([]headerField, 0, len(d.Headers))
	for _, name := range d.Headers.Names() {
		for _, v := range d.Headers[name] {
			headers = append(headers, headerField{name, v})
		}
	}
	body := d.Body
	if d.Reason != pdp.ReasonPolicyDenied {
		b, contentType := denialBody(d)
		body = string(b)
		if contentType != "" {
			headers = append(headers, headerField{"content-type", contentType})
		}
	}

	md, err := dynamicMetadata(d)
	if err != nil {
		a.log.Warn("dynamic metadata dropped from denial", "decision_id", d.ID, "error", err)
		md, _ = structpb.NewStruct(map[string]any{"decision_id": d.ID})
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied), Message: string(d.Reason)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: replaceHeaderOptions(headers),
			Body:    body,
		}},
		DynamicMetadata: md,
	}
}

// replaceHeaderOptions makes the first value of each name replace the
// client's header (OVERWRITE_IF_EXISTS_OR_ADD) and later values append, so
// a client cannot pre-set a header the policy sets.
func replaceHeaderOptions(fields []headerField) []*corev3.HeaderValueOption {
	seen := map[string]bool{}
	out := make([]*corev3.HeaderValueOption, 0, len(fields))
	for _, f := range fields {
		action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if seen[f.name] {
			action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		seen[f.name] = true
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: f.name, Value: f.value},
			AppendAction: action,
		})
	}
	return out
}

// appendHeaderOptions appends every value (APPEND_IF_EXISTS_OR_ADD).
func appendHeaderOptions(fields []headerField) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, 0, len(fields))
	for _, f := range fields {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: f.name, Value: f.value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

// dynamicMetadata returns the policy's dynamic_metadata plus decision_id,
// which OPA's Envoy plugin adds too, as a protobuf Struct.
func dynamicMetadata(d *pdp.Decision) (*structpb.Struct, error) {
	fields := make(map[string]*structpb.Value, len(d.DynamicMetadata)+1)
	for k, v := range d.DynamicMetadata {
		pv, err := structValue(v)
		if err != nil {
			return nil, fmt.Errorf("dynamic_metadata %q: %w", k, err)
		}
		fields[k] = pv
	}
	fields["decision_id"] = structpb.NewStringValue(d.ID)
	return &structpb.Struct{Fields: fields}, nil
}

// structValue converts a JSON-like value, json.Number included, into a
// protobuf Value.
func structValue(v any) (*structpb.Value, error) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", x, err)
		}
		return structpb.NewNumberValue(f), nil
	case map[string]any:
		fields := make(map[string]*structpb.Value, len(x))
		for k, item := range x {
			pv, err := structValue(item)
			if err != nil {
				return nil, err
			}
			fields[k] = pv
		}
		return structpb.NewStructValue(&structpb.Struct{Fields: fields}), nil
	case []any:
		list := make([]*structpb.Value, 0, len(x))
		for _, item := range x {
			pv, err := structValue(item)
			if err != nil {
				return nil, err
			}
			list = append(list, pv)
		}
		return structpb.NewListValue(&structpb.ListValue{Values: list}), nil
	}
	return structpb.NewValue(v)
}
