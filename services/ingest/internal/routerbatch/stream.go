package routerbatch

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/herald-push/herald/pkg/rpcstream"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// streamRotate is how long a stream to a router takes calls before it is replaced:
// well within the grace a router gives a connection past its -max-connection-age
// (30 s), and often enough that a router added by a scale-up soon gets streams.
const streamRotate = 20 * time.Second

// Streamed is a router client whose RouteBatch calls travel on long-lived
// RouteStream streams (unary RouteBatch with a router that has none).
type Streamed struct {
	heraldv1.RouterClient
	calls *rpcstream.Client[heraldv1.RouteBatchRequest, heraldv1.RouteBatchResponse, *heraldv1.RouteBatchRequest, *heraldv1.RouteBatchResponse]
}

// NewStreamed returns a Streamed over rc that keeps streams open at once.
func NewStreamed(rc heraldv1.RouterClient, streams int) *Streamed {
	return &Streamed{
		RouterClient: rc,
		calls: rpcstream.NewClient(
			func(ctx context.Context) (grpc.BidiStreamingClient[heraldv1.RouteBatchRequest, heraldv1.RouteBatchResponse], error) {
				return rc.RouteStream(ctx)
			},
			func(ctx context.Context, req *heraldv1.RouteBatchRequest) (*heraldv1.RouteBatchResponse, error) {
				return rc.RouteBatch(ctx, req)
			},
			rpcstream.Options{Streams: streams, Rotate: streamRotate}),
	}
}

// RouteBatch routes a batch over a stream. Call options do not apply to streamed calls.
func (s *Streamed) RouteBatch(ctx context.Context, req *heraldv1.RouteBatchRequest, _ ...grpc.CallOption) (*heraldv1.RouteBatchResponse, error) {
	return s.calls.Call(ctx, req)
}

// Close ends the streams; call it once no call can start.
func (s *Streamed) Close() { s.calls.Close() }
