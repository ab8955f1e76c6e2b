package api

import (
	"context"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authgate/pdp/pdp"
)

// GRPCRejectFunc builds the reply to a unary call that the limits reject
// with reason. For Envoy's Check it must return a denial CheckResponse and
// a nil error, because Envoy turns a gRPC error into its status_on_error
// and the caller would see neither the reason nor Retry-After.
type GRPCRejectFunc func(ctx context.Context, info *grpc.UnaryServerInfo,
	reason pdp.Reason) (any, error)

// grpcExemptPrefixes are services the limits never apply to, so health
// checks and reflection still work while decisions are shed.
var grpcExemptPrefixes = []string{
	"/grpc.health.v1.Health/",
	"/grpc.reflection.",
}

// UnaryServerInterceptor returns the gRPC counterpart of Middleware. It
// rejects calls whose incoming metadata exceeds the header limits, sheds
// calls beyond MaxConcurrent and gives each call a DecisionTimeout
// deadline. The reply to a rejected call comes from reject. When reject is
// nil or returns a nil reply and error, the call fails with
// RESOURCE_EXHAUSTED.
//
// The HTTP headers of an Envoy CheckRequest travel in the message, not
// the metadata, so the Check handler applies CheckHeaders to them itself.
// A Check handler may also call Limiter().TryAcquire and Release itself
// instead of relying on this interceptor, but never both, or one Check
// takes two slots.
func (l *Limits) UnaryServerInterceptor(reject GRPCRejectFunc) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo,
		handler grpc.UnaryHandler) (any, error) {
		if grpcExempt(info.FullMethod) {
			return handler(ctx, req)
		}
		if err := l.checkMetadata(ctx); err != nil {
			return l.rejectGRPC(ctx, info, err, reject)
		}
		// A Check carries the original request's headers in its message, not
		// in gRPC metadata.
		if cr, ok := req.(*authv3.CheckRequest); ok {
			if err := l.CheckHeaders(cr.GetAttributes().GetRequest().GetHttp().GetHeaders()); err != nil {
				return l.rejectGRPC(ctx, info, err, reject)
			}
		}
		if !l.limiter.TryAcquire() {
			return l.rejectGRPC(ctx, info,
				pdp.Denyf(pdp.ReasonOverloaded, "%d decisions in flight", l.limiter.Max()), reject)
		}
		defer l.limiter.Release()

		ctx, cancel := context.WithTimeout(ctx, l.cfg.DecisionTimeout)
		defer cancel()
		return handler(ctx, req)
	}
}

// checkMetadata applies the header limits to incoming gRPC metadata.
func (l *Limits) checkMetadata(ctx context.Context) error {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil
	}
	count, size := 0, 0
	for name, values := range md {
		count += len(values)
		for _, v := range values {
			size += len(name) + len(v)
		}
	}
	if count > l.cfg.MaxHeaderCount {
		return pdp.Denyf(pdp.ReasonRequestTooLarge, "%d metadata fields exceed max_header_count %d",
			count, l.cfg.MaxHeaderCount)
	}
	return l.checkHeaderBytes(size)
}

func (l *Limits) rejectGRPC(ctx context.Context, info *grpc.UnaryServerInfo, err error,
	reject GRPCRejectFunc) (any, error) {
	reason := pdp.ReasonOf(err, pdp.ReasonRequestInvalid)
	l.reject(reason, err, "method", info.FullMethod)
	if reject != nil {
		resp, rerr := reject(ctx, info, reason)
		if resp != nil || rerr != nil {
			return resp, rerr
		}
	}
	return nil, status.Error(codes.ResourceExhausted, string(reason)+": "+reason.Text())
}

func grpcExempt(method string) bool {
	for _, p := range grpcExemptPrefixes {
		if strings.HasPrefix(method, p) {
			return true
		}
	}
	return false
}
