package rawconn

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
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
	return &conn{Conn: c, rc: rc, r: newDirection("read"), w: newDirection("write")}
}

func wrapPooled(c net.Conn) net.Conn {
	w, ok := wrap(c).(*conn)
	if !ok {
		return c
	}
	p := &peeker{RawConn: w.rc}
	p.fn = p.peek
	return &pooledConn{conn: w, peeker: p}
}

// conn is a net.Conn whose Read and Write go through rc with RawSyscall; the rest
// (Close, addresses, deadlines) is the wrapped connection's.
type conn struct {
	net.Conn
	rc   syscall.RawConn
	r, w *direction
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
	n, err := c.r.run(c.rc.Read, b)
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
	n, err := c.w.run(c.rc.Write, b)
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// direction is one direction of a conn: the function RawConn.Read or RawConn.Write
// calls with the descriptor, made once per connection, and the state it works on.
// A function literal per call, with the variables it captures, would be three
// allocations on every read and write. mu keeps concurrent callers of one direction
// apart, as net.Conn's own lock does.
type direction struct {
	mu    sync.Mutex
	op    string // "read" or "write", for errors
	fn    func(fd uintptr) bool
	b     []byte
	n     int
	errno syscall.Errno
}

func newDirection(op string) *direction {
	d := &direction{op: op}
	if op == "read" {
		d.fn = d.read
	} else {
		d.fn = d.write
	}
	return d
}

// run has rawIO (the RawConn's Read or Write) call d.fn with the descriptor until
// it is done, and returns how many bytes of b moved.
func (d *direction) run(rawIO func(func(uintptr) bool) error, b []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.b, d.n, d.errno = b, 0, 0
	err := rawIO(d.fn)
	n, errno := d.n, d.errno
	d.b = nil // the caller's buffer is not ours to keep
	if err == nil && errno != 0 {
		err = os.NewSyscallError(d.op, errno)
	}
	return n, err
}

// read makes one read(2) of what fd holds; false on EAGAIN, for the netpoller to
// wait until fd is readable and call it again.
func (d *direction) read(fd uintptr) bool {
	for {
		m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&d.b[0])), uintptr(len(d.b)))
		switch e {
		case 0:
			d.n = int(m)
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			d.errno = e
			return true
		}
	}
}

// write writes to fd until all of d.b is written; false on EAGAIN, for the
// netpoller to wait until fd can take more and call it again.
func (d *direction) write(fd uintptr) bool {
	for d.n < len(d.b) {
		m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&d.b[d.n])), uintptr(len(d.b)-d.n))
		switch e {
		case 0:
			d.n += int(m)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			d.errno = e
			return true
		}
	}
	return true
}

// pooledConn is a conn whose SyscallConn answers a pool's check with a raw peek
// first (WrapPooled).
type pooledConn struct {
	*conn
	peeker *peeker
}

// SyscallConn gives the descriptor through peeker.
func (c *pooledConn) SyscallConn() (syscall.RawConn, error) { return c.peeker, nil }

// peeker is the syscall.RawConn of a pooledConn. Its Read first peeks at the
// socket with a raw recvfrom(MSG_PEEK|MSG_DONTWAIT), the call go-redis's check
// makes through syscall.Recvfrom, which enters the scheduler's syscall state and
// so wakes the runtime's monitor thread. Only when that peek finds something other
// than an open, empty socket (data, the peer's close, an error) does it run the
// caller's function, which then sees the same and decides. Control and Write are
// the descriptor's own.
type peeker struct {
	syscall.RawConn
	mu    sync.Mutex
	fn    func(fd uintptr) bool // p.peek, made once: see direction
	empty bool
}

// Read runs f unless a raw peek finds the socket open and empty. It suits a check
// whose f returns true at once, whatever it finds. A reader whose f waits for data
// (returns false until some comes) would see Read return at once without running
// it: hence WrapPooled only for connections whose RawConn only such a check reads.
func (p *peeker) Read(f func(fd uintptr) bool) error {
	p.mu.Lock()
	err := p.RawConn.Read(p.fn)
	empty := p.empty
	p.mu.Unlock()
	if err != nil || empty {
		return err
	}
	return p.RawConn.Read(f)
}

// peek records whether fd is open with nothing to read.
func (p *peeker) peek(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e != syscall.EINTR {
			p.empty = e == syscall.EAGAIN
			return true
		}
	}
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
