//go:build !linux

package rawconn

import (
	"net"
	"time"
)

// wrap leaves c as it is: the raw calls are written, and measured, for Linux only.
func wrap(c net.Conn) net.Conn { return c }

func wrapPooled(c net.Conn) net.Conn { return c }

// setUserTimeout leaves c as it is: grpc-go sets TCP_USER_TIMEOUT on Linux only.
func setUserTimeout(net.Conn, time.Duration) error { return nil }
