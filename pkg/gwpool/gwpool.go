// Package gwpool keeps one gRPC client connection per gateway address, shared by
// every caller that needs to reach a gateway (routers delivering, gateways evicting).
package gwpool

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/herald-push/herald/pkg/rawconn"
	"github.com/herald-push/herald/pkg/rpccodec"
	"github.com/herald-push/herald/pkg/rpcstream"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// deliverer carries DeliverBatch calls to one gateway on DeliverStream.
type deliverer = rpcstream.Client[heraldv1.DeliverBatchRequest, heraldv1.DeliverBatchResponse, *heraldv1.DeliverBatchRequest, *heraldv1.DeliverBatchResponse]

// rotate is how long a router's stream to a gateway takes calls before it is
// replaced (see rpcstream.Options.Rotate).
const rotate = 30 * time.Second

// Pool dials gateways lazily and keeps the connections.
type Pool struct {
	opts       []grpc.DialOption
	mu         sync.Mutex
	conns      map[string]*grpc.ClientConn
	deliverers map[string]*deliverer
}

// New returns a Pool that dials with opts in addition to plaintext transport
// credentials (the services talk inside the cluster network; see docs/operations.md).
func New(opts ...grpc.DialOption) *Pool {
	return &Pool{
		opts:       append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), rpccodec.DialOption(), grpc.WithContextDialer(rawconn.DialTCP)}, opts...),
		conns:      map[string]*grpc.ClientConn{},
		deliverers: map[string]*deliverer{},
	}
}

// Client returns a client for the gateway at addr.
func (p *Pool) Client(addr string) (heraldv1.GatewayClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client(addr)
}

// DeliverBatch calls DeliverBatch on the gateway at addr, over the DeliverStream
// kept open to it (unary if the gateway has no DeliverStream).
func (p *Pool) DeliverBatch(ctx context.Context, addr string, req *heraldv1.DeliverBatchRequest) (*heraldv1.DeliverBatchResponse, error) {
	p.mu.Lock()
	d, ok := p.deliverers[addr]
	if !ok {
		gc, err := p.client(addr)
		if err != nil {
			p.mu.Unlock()
			return nil, err
		}
		d = rpcstream.NewClient(
			func(ctx context.Context) (grpc.BidiStreamingClient[heraldv1.DeliverBatchRequest, heraldv1.DeliverBatchResponse], error) {
				return gc.DeliverStream(ctx)
			},
			func(ctx context.Context, req *heraldv1.DeliverBatchRequest) (*heraldv1.DeliverBatchResponse, error) {
				return gc.DeliverBatch(ctx, req)
			},
			rpcstream.Options{Rotate: rotate})
		p.deliverers[addr] = d
	}
	p.mu.Unlock()
	return d.Call(ctx, req)
}

// client returns a client for the gateway at addr; p.mu is held.
func (p *Pool) client(addr string) (heraldv1.GatewayClient, error) {
	cc, ok := p.conns[addr]
	if !ok {
		var err error
		// NewClient does not connect; the first call does, and fails fast if the
		// gateway is gone.
		cc, err = grpc.NewClient(addr, p.opts...)
		if err != nil {
			return nil, fmt.Errorf("gateway %s: %w", addr, err)
		}
		p.conns[addr] = cc
	}
	return heraldv1.NewGatewayClient(cc), nil
}

// Forget closes and drops the connection to addr, after its gateway went away.
func (p *Pool) Forget(addr string) {
	p.mu.Lock()
	cc, ok := p.conns[addr]
	delete(p.conns, addr)
	d := p.deliverers[addr]
	delete(p.deliverers, addr)
	p.mu.Unlock()
	if d != nil {
		d.Close()
	}
	if ok {
		_ = cc.Close() // the gateway is gone; nothing to report
	}
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, d := range p.deliverers {
		d.Close()
		delete(p.deliverers, addr)
	}
	for addr, cc := range p.conns {
		_ = cc.Close() // shutting down; nothing to report
		delete(p.conns, addr)
	}
}
