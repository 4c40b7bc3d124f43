package app

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"
)

// HTTPConfig holds the settings of the HTTP server application servers talk to.
type HTTPConfig struct {
	// TLSCert and TLSKey are PEM files; with both set the API speaks HTTPS
	// (HTTP/2 by ALPN, or HTTP/1.1). Without them it speaks cleartext HTTP/1.1,
	// and HTTP/2 with prior knowledge (h2c) for in-cluster callers.
	TLSCert string
	TLSKey  string
	// ReadHeaderTimeout bounds reading a request's headers, ReadTimeout the
	// whole request with its body: a client that trickles bytes is cut off.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end of
	// the response; it must cover the body, the storage work and the answer.
	WriteTimeout time.Duration
	// IdleTimeout is how long a kept-alive connection may wait for its next
	// request.
	IdleTimeout    time.Duration
	MaxHeaderBytes int
}

// RegisterFlags registers the TLS files and the timeouts.
func (c *HTTPConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) for HTTPS; with -tls-key. Without them: cleartext HTTP/1.1 and h2c")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key for HTTPS; with -tls-cert")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", 5*time.Second, "longest a client may take to send a request's headers")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", 15*time.Second, "longest a client may take to send a whole request")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", 30*time.Second, "longest from a request's headers to the end of its response")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 2*time.Minute, "longest a kept-alive connection waits for its next request")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", 16<<10, "largest request header block accepted")
}

// Validate checks that TLS files come in pairs and timeouts are positive.
func (c *HTTPConfig) Validate() error {
	var errs []error
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key go together"))
	}
	if c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0 {
		errs = append(errs, errors.New("read-header-timeout, read-timeout, write-timeout and idle-timeout must be positive"))
	}
	if c.MaxHeaderBytes < 4096 {
		errs = append(errs, errors.New("max-header-bytes must be at least 4096"))
	}
	return errors.Join(errs...)
}

// TLS reports whether the server speaks HTTPS.
func (c *HTTPConfig) TLS() bool { return c.TLSCert != "" }

// newServer returns the server for handler: HTTP/1.1 with keep-alive and HTTP/2,
// over TLS when configured and in cleartext (h2c, prior knowledge) otherwise.
func (c *HTTPConfig) newServer(handler http.Handler) (*http.Server, error) {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		Protocols:         &protocols,
	}
	if c.TLS() {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
		protocols.SetHTTP2(true)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	return srv, nil
}

// serve runs srv on ln until Shutdown; a clean shutdown is not an error.
func (c *HTTPConfig) serve(srv *http.Server, ln net.Listener) error {
	var err error
	if c.TLS() {
		// The certificate is in srv.TLSConfig; ServeTLS adds the ALPN protocols.
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
