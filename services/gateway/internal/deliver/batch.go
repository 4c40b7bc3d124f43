package deliver

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/herald-push/herald/pkg/rpcstream"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// DeliverBatch queues each message as Deliver would; a malformed one is refused
// without failing the others.
func (s *Server) DeliverBatch(_ context.Context, req *heraldv1.DeliverBatchRequest) (*heraldv1.DeliverBatchResponse, error) {
	out := &heraldv1.DeliverBatchResponse{Accepted: make([]bool, len(req.GetRequests()))}
	for i, r := range req.GetRequests() {
		// A malformed message is refused, and does not fail the others.
		out.Accepted[i], _ = s.deliver(r)
	}
	return out, nil
}

// DeliverStream answers the batches of one stream as DeliverBatch would, one after
// another: a batch only hands messages to connections' inboxes.
func (s *Server) DeliverStream(stream grpc.BidiStreamingServer[heraldv1.DeliverBatchRequest, heraldv1.DeliverBatchResponse]) error {
	return rpcstream.Serve(stream, rpcstream.ServeOptions{Parallel: 1, Drain: s.drain, Observe: s.observe}, func(ctx context.Context, req *heraldv1.DeliverBatchRequest) *heraldv1.DeliverBatchResponse {
		resp, _ := s.DeliverBatch(ctx, req) // DeliverBatch fails no batch
		return resp
	})
}

// ObserveStreamedCalls has f record each batch DeliverStream carries (see
// telemetry.StreamedCalls).
func (s *Server) ObserveStreamedCalls(f func(context.Context, time.Duration)) { s.observe = f }

// Drain asks the routers on every DeliverStream, open or opened later, to move to a
// new stream. Call it before the gRPC server's GracefulStop, which waits for the
// streams to end.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.drain) }) }
