//go:build linux

package rawconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pair returns both ends of a loopback TCP connection: the accepted one through
// Listener, the dialed one through Dialer, both wrapped.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := Listener{Listener: ln}
	t.Cleanup(func() { wl.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client, err = Dialer(&net.Dialer{})(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.FailNow()
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	for _, c := range []net.Conn{server, client} {
		if _, ok := c.(*conn); !ok {
			t.Fatalf("%T is not wrapped", c)
		}
	}
	return server, client
}

// What one end writes, the other reads, byte for byte, in both directions; the
// 8 MiB write is more than the sockets' buffers hold, so the writer waits for the
// reader (EAGAIN, then the netpoller) part of the way.
func TestRoundTrip(t *testing.T) {
	server, client := pair(t)
	for _, size := range []int{1, 1500, 8 << 20} {
		want := make([]byte, size)
		rand.Read(want)
		for _, dir := range [][2]net.Conn{{client, server}, {server, client}} {
			w, r := dir[0], dir[1]
			done := make(chan error, 1)
			go func() {
				n, err := w.Write(want)
				if err == nil && n != size {
					err = errors.New("short write")
				}
				done <- err
			}()
			got := make([]byte, size)
			if _, err := io.ReadFull(r, got); err != nil {
				t.Fatalf("%d bytes: read: %v", size, err)
			}
			if err := <-done; err != nil {
				t.Fatalf("%d bytes: write: %v", size, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%d bytes: read other bytes than were written", size)
			}
		}
	}
	if n, err := client.Write(nil); n != 0 || err != nil {
		t.Fatalf("empty write: %d, %v", n, err)
	}
	if n, err := client.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}
}

// Deadlines, the peer's close and one's own close end reads and writes with the
// errors net.Conn gives.
func TestEnds(t *testing.T) {
	t.Run("read deadline", func(t *testing.T) {
		server, _ := pair(t)
		server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := server.Read(make([]byte, 10))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past the deadline: %v, want a timeout", err)
		}
	})
	t.Run("write deadline", func(t *testing.T) {
		server, _ := pair(t) // the client never reads
		server.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := server.Write(make([]byte, 64<<20))
		if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n == 64<<20 {
			t.Fatalf("write to a full socket: %d bytes, %v; want some written, then a timeout", n, err)
		}
	})
	t.Run("peer closes", func(t *testing.T) {
		server, client := pair(t)
		client.Write([]byte("last"))
		client.Close()
		got, err := io.ReadAll(server)
		if err != nil || string(got) != "last" {
			t.Fatalf("read %q, %v; want what was sent, then EOF", got, err)
		}
		if _, err := server.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read after EOF: %v", err)
		}
		// Writing to a closed peer fails, at the latest once it has answered with
		// a reset.
		var err2 error
		for deadline := time.Now().Add(5 * time.Second); err2 == nil && time.Now().Before(deadline); {
			_, err2 = server.Write([]byte("anyone?"))
		}
		if !errors.Is(err2, syscall.EPIPE) && !errors.Is(err2, syscall.ECONNRESET) {
			t.Fatalf("write to a closed peer: %v", err2)
		}
	})
	t.Run("own close", func(t *testing.T) {
		server, _ := pair(t)
		read := make(chan error, 1)
		go func() {
			_, err := server.Read(make([]byte, 1))
			read <- err
		}()
		server.Close() // the read ends whether it waits in the netpoller yet or not
		select {
		case err := <-read:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read on a closed connection: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end a waiting read")
		}
		if _, err := server.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write on a closed connection: %v, want net.ErrClosed", err)
		}
	})
}

// A connection without a file descriptor is left as it is; a wrapped one still
// gives its descriptor to those that ask.
func TestWrap(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("a pipe was wrapped")
	}
	server, _ := pair(t)
	sc, ok := server.(syscall.Conn)
	if !ok {
		t.Fatal("the wrapped connection hides its descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	if err := rc.Control(func(f uintptr) { fd = f }); err != nil || fd == 0 {
		t.Fatalf("descriptor %d, %v", fd, err)
	}
}

// A half-close reaches the peer as the end of what it reads, and leaves the other
// direction open: net/http relies on it to have a client read an error answer
// before the connection is dropped.
func TestCloseWrite(t *testing.T) {
	server, client := pair(t)
	cw, ok := server.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("the wrapped connection cannot half-close")
	}
	server.Write([]byte("the answer"))
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "the answer" {
		t.Fatalf("the peer read %q, %v; want the answer, then EOF", got, err)
	}
	client.Write([]byte("still heard"))
	buf := make([]byte, 11)
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "still heard" {
		t.Fatalf("after the half-close, read %q, %v", buf, err)
	}
}

// A listener with a TCP user timeout sets it on what it accepts, as grpc-go does on
// the connections it serves.
func TestListenerUserTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := Listener{Listener: ln, TCPUserTimeout: 20 * time.Second}
	defer wl.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c) // until the test closes its end
		}
	}()
	c, err := wl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if got != 20000 {
		t.Fatalf("TCP_USER_TIMEOUT %d ms, want 20000", got)
	}
}

// A read and a write on a wrapped connection allocate nothing, as net.Conn's do:
// they run for every message a service handles.
func TestReadWriteAllocateNothing(t *testing.T) {
	server, client := pair(t)
	out, in := []byte("x"), make([]byte, 1)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := client.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := server.Read(in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per write and read, want 0", allocs)
	}
}

// A pooled connection's RawConn.Read runs the pool's check only when the socket
// holds something or was closed by the peer, and the check then sees what the raw
// peek saw; on an open, empty socket Read returns without running it.
func TestPooledCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	dialed, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client := WrapPooled(dialed)
	defer client.Close()
	server := <-accepted
	if server == nil {
		t.FailNow()
	}
	defer server.Close()

	// check is go-redis's: peek at one byte without waiting, and say what it found.
	check := func() (ran bool, found string) {
		t.Helper()
		rc, err := client.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.Read(func(fd uintptr) bool {
			ran = true
			var b [1]byte
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case n == 0 && err == nil:
				found = "EOF"
			case n > 0:
				found = "data"
			default:
				found = err.Error()
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return ran, found
	}

	if ran, found := check(); ran {
		t.Fatalf("an open, empty socket ran the check, which found %s", found)
	}
	if _, err := server.Write([]byte("+PONG\r\n")); err != nil {
		t.Fatal(err)
	}
	// What the peer sends or does may take a moment to reach the socket: until it
	// has, the raw peek finds nothing and the check does not run; once it has, the
	// check runs and finds the same.
	deadline := time.Now().Add(5 * time.Second)
	awaitCheck := func(what, want string) {
		t.Helper()
		for {
			ran, found := check()
			if ran && found == want {
				return
			}
			if ran || time.Now().After(deadline) {
				t.Fatalf("%s: ran %v, found %q; want %q", what, ran, found, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	awaitCheck("with a reply waiting", "data")
	buf := make([]byte, 7)
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "+PONG\r\n" {
		t.Fatalf("the peeks consumed the reply: read %q, %v", buf, err)
	}
	server.Close()
	awaitCheck("after the peer closed", "EOF")
}
