package deliver

import (
	"context"

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
