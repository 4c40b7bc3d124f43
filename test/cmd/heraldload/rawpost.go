package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/herald-push/herald/pkg/rawconn"
)

// rawPoster POSTs prepared bodies over one kept-alive HTTP/1.1 connection of its
// own (reading and writing with raw system calls, package rawconn), writing each
// request and reading its response on the caller's goroutine.
// net/http's Transport hands every request to a writer goroutine and its response
// back from a reader goroutine: two hand-offs, and their wakes, per message, which
// the load tool would spend beside Herald on the shared cores. Each sender owns one
// rawPoster; it is not safe for concurrent use.
type rawPoster struct {
	// head is every header line after Host, the same for every request.
	head    []byte
	timeout time.Duration

	addr string // where conn goes
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
}

// newRawPoster returns a poster sending header with every request, each request
// bounded by timeout.
func newRawPoster(header http.Header, timeout time.Duration) *rawPoster {
	var head []byte
	names := make([]string, 0, len(header))
	for k := range header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range header[k] {
			head = append(head, k...)
			head = append(head, ": "...)
			head = append(head, v...)
			head = append(head, "\r\n"...)
		}
	}
	return &rawPoster{head: head, timeout: timeout}
}

// target is where a push endpoint's POSTs go, parsed once.
type target struct {
	addr string // host:port to dial
	host string // the Host header
	path string // the request target
}

func parseTarget(endpoint string) (target, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return target{}, err
	}
	if u.Scheme != "http" {
		return target{}, fmt.Errorf("the load tool's HTTP/1.1 client: %s is not http:// (use -net-http)", endpoint)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return target{addr: addr, host: u.Host, path: u.RequestURI()}, nil
}

// post sends body to t and returns the response's status, its body read and
// dropped so that the connection is reused. A failed request drops the
// connection; the next one dials again.
func (p *rawPoster) post(ctx context.Context, t target, body []byte) (int, error) {
	if p.conn != nil && p.addr != t.addr {
		p.drop()
	}
	if p.conn == nil {
		c, err := rawconn.Dialer(&net.Dialer{Timeout: p.timeout})(ctx, "tcp", t.addr)
		if err != nil {
			return 0, err
		}
		p.conn, p.addr, p.br = c, t.addr, bufio.NewReaderSize(c, 4096)
	}
	b := append(p.buf[:0], "POST "...)
	b = append(b, t.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, t.host...)
	b = append(b, "\r\n"...)
	b = append(b, p.head...)
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	p.buf = b
	// A deadline on the socket, not the context: watching a context costs a
	// goroutine hand-off of its own, which is what this poster avoids.
	if err := p.conn.SetDeadline(time.Now().Add(p.timeout)); err != nil {
		p.drop()
		return 0, err
	}
	if _, err := p.conn.Write(b); err != nil {
		p.drop()
		return 0, err
	}
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		p.drop()
		return 0, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close() // read to the end above, or the connection is dropped below
	if err != nil || resp.Close {
		p.drop()
	}
	return resp.StatusCode, err
}

// close closes the connection, if any.
func (p *rawPoster) close() { p.drop() }

func (p *rawPoster) drop() {
	if p.conn != nil {
		_ = p.conn.Close() // dropping it either way
		p.conn, p.br = nil, nil
	}
}
