package heraldv1

import (
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Err returns the error Route fails with for the message r is the result of, nil
// when it succeeded: a gRPC status of r's code and message, carrying r's
// retry_after_ms as a google.rpc.RetryInfo detail, so that a rate-limited message
// reads the same from Route as from RouteBatch (see RetryAfter).
func (r *RouteResult) Err() error {
	code := codes.Code(r.GetCode())
	if code == codes.OK {
		return nil
	}
	st := status.New(code, r.GetError())
	if ms := r.GetRetryAfterMs(); ms > 0 {
		// WithDetails fails only for a detail that does not marshal; a RetryInfo does.
		if withRetry, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(ms) * time.Millisecond)}); err == nil {
			st = withRetry
		}
	}
	return st.Err()
}

// RetryAfter returns the delay of err's google.rpc.RetryInfo detail: for a
// message that its subscription's rate limit refused (ResourceExhausted), how
// long until the limit would allow one. ok is false when err carries none.
func RetryAfter(err error) (_ time.Duration, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, isRetry := d.(*errdetails.RetryInfo); isRetry && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}
