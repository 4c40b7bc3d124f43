package vapid

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// MaxLifetime is the furthest ahead a token's "exp" may be (RFC 8292 §2).
const MaxLifetime = 24 * time.Hour

// Claims are the RFC 8292 claims of a verified token.
type Claims struct {
	// Audience is the "aud" claim: the origin of the push service.
	Audience string
	// Subject is the "sub" claim, a mailto: or https: contact URI, or ""
	// if the token has none.
	Subject string
	// Expires is the "exp" claim, in UTC.
	Expires time.Time
}

// validSubject reports whether s is a contact URI as RFC 8292 §2.1 asks:
// a mailto: URI with an address, or an https: URL with a host.
func validSubject(s string) bool {
	// url.Parse lets spaces through in opaque parts; a URI has none.
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return false
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch u.Scheme { // url.Parse lowercases the scheme
	case "mailto":
		return strings.Contains(u.Opaque, "@")
	case "https":
		return u.Host != ""
	}
	return false
}

// checkOrigin reports whether aud is an origin as a signer should write
// it: http or https, a host, and nothing after it.
func checkOrigin(aud string) error {
	u, err := url.Parse(aud)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAudience, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(aud, "?") || strings.HasSuffix(aud, "#") {
		return fmt.Errorf("%w: %q is not an origin (scheme://host[:port])", ErrAudience, aud)
	}
	return nil
}
