package pushclient

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/herald-push/herald/pkg/rawconn"
)

// SourceClient returns an HTTP client for WebSocket handshakes (DialWith) whose
// connections leave from the local address src (for example 127.0.0.2): a load tool
// opening more connections than one source address has ephemeral ports spreads them
// over several. They read and write with raw system calls (package rawconn), as
// Herald's services do: a load tool shares the machine with what it measures.
//
// Over ws:// (cleartext) its transport does the handshake itself: each request gets
// a connection of its own, and the answer's body is that connection, which the
// WebSocket library takes over after 101 Switching Protocols. net/http's Transport
// would start a goroutine to dial each connection and two to read and write it, and
// keep a pool that handshakes never reuse: in a reconnect storm of 19,000 user
// agents, that was a good part of the load tool's CPU. Over wss:// net/http's
// Transport does it, TLS included.
func SourceClient(src string) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	dial := rawconn.Dialer(d)
	return &http.Client{Transport: upgradeTransport{
		dial: dial,
		// Each WebSocket takes its connection over; nothing is kept idle.
		tls: &http.Transport{DialContext: dial, MaxIdleConns: -1},
	}}
}

// upgradeTransport is SourceClient's http.RoundTripper.
type upgradeTransport struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	tls  http.RoundTripper // for https (wss://)
}

// RoundTrip dials req's host, writes req, and reads the answer, whose body is the
// connection (read through what was buffered reading the answer).
func (t upgradeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return t.tls.RoundTrip(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	ctx := req.Context()
	c, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The context bounds the handshake: once it ends (its deadline, or a cancel), a
	// deadline long past ends what blocks, and RoundTrip answers with ctx.Err().
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	resp, err := handshake(c, req)
	if !stop() || err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_ = c.SetDeadline(time.Time{}) // the connection's own users set theirs
	return resp, nil
}

// handshake writes req on c and reads its answer.
func handshake(c net.Conn, req *http.Request) (*http.Response, error) {
	bw := bufio.NewWriter(c)
	if err := req.Write(bw); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &upgraded{r: br, Conn: c}
		return resp, nil
	}
	resp.Body = &answerBody{ReadCloser: resp.Body, c: c}
	return resp, nil
}

// upgraded is a connection after 101 Switching Protocols: what the answer's reader
// buffered is read first.
type upgraded struct {
	r *bufio.Reader
	net.Conn
}

func (u *upgraded) Read(b []byte) (int, error) {
	if u.r != nil {
		if u.r.Buffered() > 0 {
			return u.r.Read(b)
		}
		u.r = nil // drained: read the connection itself from now on
	}
	return u.Conn.Read(b)
}

// answerBody is the body of any other answer; closing it closes the connection.
type answerBody struct {
	io.ReadCloser
	c net.Conn
}

func (b *answerBody) Close() error {
	return errors.Join(b.ReadCloser.Close(), b.c.Close())
}
