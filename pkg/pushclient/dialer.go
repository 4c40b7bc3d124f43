package pushclient

import (
	"net"
	"net/http"
	"time"

	"github.com/herald-push/herald/pkg/rawconn"
)

// SourceClient returns an HTTP client whose connections leave from the local address
// src (for example 127.0.0.2): a load tool opening more connections than one source
// address has ephemeral ports spreads them over several. They read and write with raw
// system calls (package rawconn), as Herald's services do: a load tool shares the
// machine with what it measures.
func SourceClient(src string) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Transport: &http.Transport{
		DialContext: rawconn.Dialer(d),
		// Each WebSocket takes its connection over; nothing is kept idle.
		MaxIdleConns: -1,
	}}
}
