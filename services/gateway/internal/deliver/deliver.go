// Package deliver is the gateway's gRPC service: routers hand it live messages for
// the user agents connected here, and other gateways ask it to close connections
// that were taken over.
package deliver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/herald-push/herald/pkg/gwpool"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/lease"
	"github.com/herald-push/herald/pkg/mozproto"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/gateway/internal/session"
)

// Server implements heraldv1.GatewayServer.
type Server struct {
	heraldv1.UnimplementedGatewayServer
	hub       *session.Hub
	drain     chan struct{} // closed by Drain
	drainOnce sync.Once
	observe   func(context.Context, time.Duration)
}

// NewServer returns a Server over hub.
func NewServer(hub *session.Hub) *Server { return &Server{hub: hub, drain: make(chan struct{})} }

// Deliver queues a live message to its user agent's connection, if that connection
// is here and still holds the epoch the router read.
func (s *Server) Deliver(_ context.Context, req *heraldv1.DeliverRequest) (*heraldv1.DeliverResponse, error) {
	accepted, err := s.deliver(req)
	if err != nil {
		return nil, err
	}
	return &heraldv1.DeliverResponse{Accepted: accepted}, nil
}

// deliver is Deliver without a response to allocate, for DeliverBatch.
func (s *Server) deliver(req *heraldv1.DeliverRequest) (bool, error) {
	m := req.GetMessage()
	if m == nil {
		return false, status.Error(codes.InvalidArgument, "message is required")
	}
	u, err := ids.ParseUAID(m.GetUaid())
	if err != nil {
		return false, status.Error(codes.InvalidArgument, "bad uaid")
	}
	sess, ok := s.hub.Lookup(u)
	if !ok || sess.Epoch() != req.GetEpoch() {
		return false, nil
	}
	return sess.Offer(m), nil
}

// Evict closes the user agent's connection here if a newer one took it over.
func (s *Server) Evict(_ context.Context, req *heraldv1.EvictRequest) (*heraldv1.EvictResponse, error) {
	u, err := ids.ParseUAID(req.GetUaid())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "bad uaid")
	}
	sess, ok := s.hub.Lookup(u)
	if !ok || sess.Epoch() >= req.GetEpoch() {
		return &heraldv1.EvictResponse{}, nil
	}
	sess.Kick(mozproto.CloseTakenOver)
	return &heraldv1.EvictResponse{Closed: 1}, nil
}

// Evictor calls Evict on other gateways through a connection pool.
type Evictor struct {
	Pool *gwpool.Pool
}

// Evict asks owner's gateway to close its connection of u older than epoch.
func (e Evictor) Evict(ctx context.Context, owner lease.Owner, u ids.UAID, epoch uint64) error {
	cl, err := e.Pool.Client(owner.Addr)
	if err != nil {
		return err
	}
	if _, err := cl.Evict(ctx, &heraldv1.EvictRequest{Uaid: u.String(), Epoch: epoch}); err != nil {
		if status.Code(err) == codes.Unavailable {
			return fmt.Errorf("evict on %s: %w: %w", owner.Gateway, session.ErrOwnerGone, err)
		}
		return fmt.Errorf("evict on %s: %w", owner.Gateway, err)
	}
	return nil
}
