package pushclient

import (
	"context"
	"net"
	"net/http"
	"time"
)

// SourceClient returns an HTTP client whose connections leave from the local address
// src (for example 127.0.0.2): a load tool opening more connections than one source
// address has ephemeral ports spreads them over several.
func SourceClient(src string) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		// Each WebSocket takes its connection over; nothing is kept idle.
		MaxIdleConns: -1,
	}}
}
