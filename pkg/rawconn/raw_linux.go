package rawconn

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func wrap(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &conn{Conn: c, rc: rc}
}

// conn is a net.Conn whose Read and Write go through rc with RawSyscall; the rest
// (Close, addresses, deadlines) is the wrapped connection's.
type conn struct {
	net.Conn
	rc syscall.RawConn
}

// SyscallConn gives the connection's descriptor to those that look for it
// (go-redis's health check of a pooled connection), as the wrapped connection
// would.
func (c *conn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

// CloseWrite shuts the sending side down, as *net.TCPConn's does: net/http does so
// before it drops a connection it answered with an error, so that the client reads
// the answer rather than a reset (go.dev/issue/3595).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.opError("close", errors.ErrUnsupported)
}

// CloseRead shuts the receiving side down, as *net.TCPConn's does.
func (c *conn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return c.opError("close", errors.ErrUnsupported)
}

// Read reads what the socket holds, waiting in the netpoller until it holds
// something, the peer closes (io.EOF), or the read deadline passes.
func (c *conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch e {
			case 0:
				n = int(m)
				return true
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until the socket is readable
			default:
				errno = e
				return true
			}
		}
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("read", errno)
	}
	if err != nil {
		return 0, c.opError("read", err)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of b, waiting in the netpoller while the socket's buffer is full,
// until the write deadline.
func (c *conn) Write(b []byte) (int, error) {
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[n])), uintptr(len(b)-n))
			switch e {
			case 0:
				n += int(m)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until the socket can take more
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("write", errno)
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// opError wraps err as net.Conn's errors are: a deadline's is a timeout
// (os.ErrDeadlineExceeded), a closed connection's is net.ErrClosed.
func (c *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// setUserTimeout sets TCP_USER_TIMEOUT on a TCP connection; other connections are
// left as they are.
func setUserTimeout(c net.Conn, d time.Duration) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d/time.Millisecond))
	}); err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("setsockopt TCP_USER_TIMEOUT", serr)
	}
	return nil
}
