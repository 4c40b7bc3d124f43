// Package rawconn wraps TCP connections so that their reads and writes are made as
// raw system calls, which Go's scheduler does not see.
//
// Every system call Go's net package makes tells the scheduler it is entering and
// leaving one (entersyscall), and entering one wakes the runtime's monitor thread
// (sysmon) when it sleeps deeply, as it does whenever the process was idle. Once
// woken it checks every 20 µs until it has found nothing to do fifty times running.
// A Herald service idles between messages hundreds of times a second, so each burst
// of work woke the monitor and kept it ticking, and on the 2-core VM of the
// benchmarks a thread's wake costs about 24 µs of CPU: the monitor alone was a sixth
// of the services' CPU at saturation and a quarter at 1,000 messages/s. Reads and
// writes made through syscall.RawConn with RawSyscall leave the scheduler out: the
// monitor wakes only for the process's other system calls and its timers, and at
// 5,000 messages/s a gateway's busiest thread went from about 2,500 to about 450
// wakes a second (docs/benchmarks.md).
//
// The sockets are non-blocking, so no call here blocks a thread: a read with no data
// and a write the socket's buffer cannot take answer EAGAIN at once, and the call then
// waits in the netpoller as net.Conn's do, deadlines included. What the scheduler
// gave up is the monitor taking a P from a thread stuck in a long read or write to run
// other goroutines meanwhile; a non-blocking call on a socket is not stuck.
package rawconn

import (
	"context"
	"net"
	"time"
)

// Wrap returns c with Read and Write made as raw system calls, or c itself where
// that is not supported (a connection without a file descriptor, or an operating
// system other than Linux).
func Wrap(c net.Conn) net.Conn { return wrap(c) }

// WrapPooled wraps c as Wrap does, for a client that keeps c in a pool and checks
// it before each use by peeking at its socket through SyscallConn().Read
// (go-redis: a connection Redis closed, in a restart or a failover, is thrown away
// rather than failing the next command). The check's own recvfrom is a system call
// the scheduler sees, made before every command and pipeline; a wrapped
// connection's RawConn.Read peeks with a raw one first and runs the check's
// function only when that peek finds the socket other than open and empty, so the
// check decides as before and costs a raw call when all is well.
func WrapPooled(c net.Conn) net.Conn { return wrapPooled(c) }

// Listener wraps the connections a listener accepts.
type Listener struct {
	net.Listener
	// TCPUserTimeout, when positive, is set on each accepted TCP connection
	// (TCP_USER_TIMEOUT: how long sent data may go unacknowledged before the kernel
	// drops the connection). grpc-go sets it on the connections it serves, but only
	// on a *net.TCPConn, which a wrapped connection is not.
	TCPUserTimeout time.Duration
}

// Accept accepts a connection, sets its TCP user timeout, and wraps it.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.TCPUserTimeout > 0 {
		if err := setUserTimeout(c, l.TCPUserTimeout); err != nil {
			c.Close()
			return nil, err
		}
	}
	return Wrap(c), nil
}

// Dialer returns a dial function, of the shape http.Transport's DialContext takes,
// that dials with d and wraps the connection.
func Dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return Wrap(c), nil
	}
}

// DialTCP dials addr over TCP, as gRPC's default dialer does, and wraps the
// connection: the shape grpc.WithContextDialer takes.
func DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	return tcpDialer(ctx, "tcp", addr)
}

var tcpDialer = Dialer(&net.Dialer{})
