// Package route is the router's gRPC service: it stores each message in its user
// agent's queue and hands it to the gateway that holds the user agent's connection.
package route

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/lease"
	"github.com/herald-push/herald/pkg/queue"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// Queue is what the router needs of the message queues.
type Queue interface {
	Append(ctx context.Context, u ids.UAID, e queue.Entry) (string, error)
	Delete(ctx context.Context, u ids.UAID, entryIDs ...string) (int64, error)
}

// Owners finds the gateway holding a user agent.
type Owners interface {
	Lookup(ctx context.Context, u ids.UAID) (lease.Owner, error)
}

// Gateways reaches gateways by address.
type Gateways interface {
	Client(addr string) (heraldv1.GatewayClient, error)
	Forget(addr string)
}

// Server implements heraldv1.RouterServer.
type Server struct {
	heraldv1.UnimplementedRouterServer
	queue          Queue
	owners         Owners
	gateways       Gateways
	deliverTimeout time.Duration
	log            *slog.Logger
	now            func() time.Time
}

// NewServer returns a Server; deliverTimeout bounds each call to a gateway.
func NewServer(q Queue, owners Owners, gateways Gateways, deliverTimeout time.Duration, log *slog.Logger) *Server {
	return &Server{queue: q, owners: owners, gateways: gateways, deliverTimeout: deliverTimeout, log: log, now: time.Now}
}

// Route stores the message (TTL > 0) and delivers it if its user agent is connected.
// It fails only when a message that must be stored could not be: then the caller
// must not report success to the application server.
func (s *Server) Route(ctx context.Context, req *heraldv1.RouteRequest) (*heraldv1.RouteResponse, error) {
	m := req.GetMessage()
	if m == nil {
		return nil, status.Error(codes.InvalidArgument, "message is required")
	}
	u, err := ids.ParseUAID(m.GetUaid())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "bad uaid")
	}
	ch, err := ids.ParseChannelID(m.GetChannelId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "bad channel id")
	}
	if m.GetTtlSeconds() < 0 {
		return nil, status.Error(codes.InvalidArgument, "negative ttl")
	}
	if m.GetReceivedUnixMs() == 0 {
		m.ReceivedUnixMs = s.now().UnixMilli()
	}
	resp := &heraldv1.RouteResponse{}
	if m.GetTtlSeconds() > 0 {
		id, err := s.queue.Append(ctx, u, queue.Entry{
			ChannelID: ch,
			Data:      m.GetData(),
			Headers:   m.GetHeaders(),
			TTL:       time.Duration(m.GetTtlSeconds()) * time.Second,
			Received:  time.UnixMilli(m.GetReceivedUnixMs()),
			Urgency:   int32(m.GetUrgency()),
			Topic:     m.GetTopic(),
		})
		if errors.Is(err, queue.ErrFull) {
			return nil, status.Error(codes.ResourceExhausted, "the user agent's queue is full")
		}
		if err != nil {
			s.log.Error("store message", "uaid", u.String(), "err", err)
			return nil, status.Error(codes.Unavailable, "message store unavailable")
		}
		m.Id, m.Stored = id, true
		resp.Stored = true
	} else {
		m.Id = unstoredID()
	}
	resp.Id = m.Id
	resp.Delivered = s.deliver(ctx, u, m)
	if !resp.Stored && !resp.Delivered {
		s.log.Debug("ttl 0 message dropped: user agent not connected", "uaid", u.String())
	}
	return resp, nil
}

// deliver hands m to the owning gateway. Failure is not an error: a stored message
// waits in the queue for the user agent's next connection.
func (s *Server) deliver(ctx context.Context, u ids.UAID, m *heraldv1.Message) bool {
	owner, err := s.owners.Lookup(ctx, u)
	if errors.Is(err, lease.ErrNoOwner) {
		return false
	}
	if err != nil {
		s.log.Warn("look up owner", "uaid", u.String(), "err", err)
		return false
	}
	gw, err := s.gateways.Client(owner.Addr)
	if err != nil {
		s.log.Warn("gateway client", "gateway", owner.Gateway, "err", err)
		return false
	}
	dctx, cancel := context.WithTimeout(ctx, s.deliverTimeout)
	defer cancel()
	resp, err := gw.Deliver(dctx, &heraldv1.DeliverRequest{Message: m, Epoch: owner.Epoch})
	if err != nil {
		if status.Code(err) == codes.Unavailable {
			// The gateway is gone; redial on the next message for that address.
			s.gateways.Forget(owner.Addr)
		}
		s.log.Warn("deliver", "uaid", u.String(), "gateway", owner.Gateway, "err", err)
		return false
	}
	return resp.GetAccepted()
}

// DeleteMessage removes a waiting message.
func (s *Server) DeleteMessage(ctx context.Context, req *heraldv1.DeleteMessageRequest) (*heraldv1.DeleteMessageResponse, error) {
	u, err := ids.ParseUAID(req.GetUaid())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "bad uaid")
	}
	n, err := s.queue.Delete(ctx, u, req.GetId())
	if err != nil {
		s.log.Error("delete message", "uaid", u.String(), "err", err)
		return nil, status.Error(codes.Unavailable, "message store unavailable")
	}
	return &heraldv1.DeleteMessageResponse{Deleted: n > 0}, nil
}

// unstoredID names a message that is not stored (TTL 0); it is never a queue entry id.
func unstoredID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "u" + hex.EncodeToString(b[:])
}
