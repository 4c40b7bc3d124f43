// Package gwpool keeps one gRPC client connection per gateway address, shared by
// every caller that needs to reach a gateway (routers delivering, gateways evicting).
package gwpool

import (
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// Pool dials gateways lazily and keeps the connections.
type Pool struct {
	opts  []grpc.DialOption
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// New returns a Pool that dials with opts in addition to plaintext transport
// credentials (the services talk inside the cluster network; see docs/operations.md).
func New(opts ...grpc.DialOption) *Pool {
	return &Pool{
		opts:  append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...),
		conns: map[string]*grpc.ClientConn{},
	}
}

// Client returns a client for the gateway at addr.
func (p *Pool) Client(addr string) (heraldv1.GatewayClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
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
	p.mu.Unlock()
	if ok {
		_ = cc.Close() // the gateway is gone; nothing to report
	}
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, cc := range p.conns {
		_ = cc.Close() // shutting down; nothing to report
		delete(p.conns, addr)
	}
}
