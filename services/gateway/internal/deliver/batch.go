package deliver

import (
	"context"

	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// DeliverBatch queues each message as Deliver would; a malformed one is refused
// without failing the others.
func (s *Server) DeliverBatch(ctx context.Context, req *heraldv1.DeliverBatchRequest) (*heraldv1.DeliverBatchResponse, error) {
	out := &heraldv1.DeliverBatchResponse{Accepted: make([]bool, len(req.GetRequests()))}
	for i, r := range req.GetRequests() {
		if resp, err := s.Deliver(ctx, r); err == nil {
			out.Accepted[i] = resp.GetAccepted()
		}
	}
	return out, nil
}
