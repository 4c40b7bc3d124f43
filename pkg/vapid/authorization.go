package vapid

import (
	"fmt"
	"strings"
)

// maxTokenSize bounds the JWT accepted from a header. Real tokens are
// about 250 bytes; the bound keeps oversized ones out of the cache.
const maxTokenSize = 2048

// Scheme is the authorization scheme credentials arrived with.
type Scheme string

// Authorization schemes ParseAuthorization accepts.
const (
	// SchemeVAPID is RFC 8292 §3: "vapid t=<jwt>, k=<key>".
	SchemeVAPID Scheme = "vapid"
	// SchemeWebPush is the pre-RFC draft form: "WebPush <jwt>", with the
	// key in the Crypto-Key header's p256ecdsa parameter.
	SchemeWebPush Scheme = "webpush"
)

// Credentials are a VAPID token and the key it claims to be signed with,
// as taken from request headers. They are unverified.
type Credentials struct {
	// Scheme is the authorization scheme used.
	Scheme Scheme
	// Token is the compact JWT.
	Token string
	// Key is the application server's public key as sent: base64url of an
	// uncompressed P-256 point, padding optional.
	Key string
}

// PublicKey returns the 65-byte uncompressed point in c.Key, for comparing
// with the applicationServerKey a subscription was created with.
func (c Credentials) PublicKey() ([]byte, error) {
	return decodePublicKeyBytes(c.Key)
}

// ParseAuthorization extracts credentials from the Authorization header
// and, for the legacy "WebPush" scheme only, the Crypto-Key header. It
// accepts
//
//	Authorization: vapid t=<jwt>, k=<key>
//
// with the parameters in any order, optional whitespace and optionally
// quoted values (RFC 8292 §3, RFC 9110 §11.2), and
//
//	Authorization: WebPush <jwt>
//	Crypto-Key: dh=<...>;p256ecdsa=<key>
//
// where Crypto-Key may hold several parameters separated by ";" or ",".
// It checks the shape of the token and key but not the signature: that is
// the Verifier's job.
func ParseAuthorization(authorization, cryptoKey string) (Credentials, error) {
	authorization = trimOWS(authorization)
	if authorization == "" {
		return Credentials{}, fmt.Errorf("%w: no Authorization header", ErrMissing)
	}
	scheme, rest := authorization, ""
	if i := strings.IndexAny(authorization, " \t"); i >= 0 {
		scheme, rest = authorization[:i], trimOWS(authorization[i+1:])
	}
	var c Credentials
	switch {
	case strings.EqualFold(scheme, string(SchemeVAPID)):
		c.Scheme = SchemeVAPID
		err := parseParams(rest, ",", func(name, value string) error {
			var dst *string
			switch {
			case strings.EqualFold(name, "t"):
				dst = &c.Token
			case strings.EqualFold(name, "k"):
				dst = &c.Key
			default:
				return nil // unknown parameters are ignored (RFC 9110 §11.2)
			}
			if *dst != "" {
				return fmt.Errorf("%w: parameter %q repeated", ErrMalformed, name)
			}
			*dst = value
			return nil
		})
		if err != nil {
			return Credentials{}, err
		}
	case strings.EqualFold(scheme, string(SchemeWebPush)):
		c.Scheme = SchemeWebPush
		if strings.ContainsAny(rest, " \t,") {
			return Credentials{}, fmt.Errorf("%w: WebPush takes a bare token", ErrMalformed)
		}
		c.Token = rest
		if c.Token == "" {
			return Credentials{}, fmt.Errorf("%w: no token after WebPush", ErrMissing)
		}
		err := parseParams(trimOWS(cryptoKey), ",;", func(name, value string) error {
			if !strings.EqualFold(name, "p256ecdsa") {
				return nil
			}
			if c.Key != "" && c.Key != value {
				return fmt.Errorf("%w: Crypto-Key has two p256ecdsa keys", ErrMalformed)
			}
			c.Key = value
			return nil
		})
		if err != nil {
			return Credentials{}, fmt.Errorf("crypto-key: %w", err)
		}
	default:
		return Credentials{}, fmt.Errorf("%w: authorization scheme %q is not vapid or WebPush", ErrMalformed, scheme)
	}

	switch {
	case c.Token == "":
		return Credentials{}, fmt.Errorf("%w: no token", ErrMissing)
	case c.Key == "":
		return Credentials{}, fmt.Errorf("%w: no key", ErrMissing)
	}
	if err := checkTokenShape(c.Token); err != nil {
		return Credentials{}, err
	}
	if _, err := c.PublicKey(); err != nil {
		return Credentials{}, err
	}
	return c, nil
}

// checkTokenShape reports whether tok looks like a compact JWS: three
// non-empty base64url segments.
func checkTokenShape(tok string) error {
	if len(tok) > maxTokenSize {
		return fmt.Errorf("%w: token is %d bytes, limit %d", ErrMalformed, len(tok), maxTokenSize)
	}
	segments, start := 0, 0
	for i := 0; i <= len(tok); i++ {
		if i < len(tok) && tok[i] != '.' {
			if !isBase64URL(tok[i]) {
				return fmt.Errorf("%w: token has a %q", ErrMalformed, tok[i])
			}
			continue
		}
		if i == start {
			return fmt.Errorf("%w: token has an empty segment", ErrMalformed)
		}
		segments++
		start = i + 1
	}
	if segments != 3 {
		return fmt.Errorf("%w: token has %d segments, want 3", ErrMalformed, segments)
	}
	return nil
}

// parseParams calls fn for each name=value parameter in s, a list
// separated by any of the bytes in seps. Whitespace around names, "=" and
// separators is skipped, empty list elements are ignored, and a value may
// be a quoted string (without escapes, which no key or token needs).
func parseParams(s, seps string, fn func(name, value string) error) error {
	for {
		s = trimOWS(s)
		for s != "" && strings.IndexByte(seps, s[0]) >= 0 {
			s = trimOWS(s[1:])
		}
		if s == "" {
			return nil
		}
		i := 0
		for i < len(s) && isTchar(s[i]) {
			i++
		}
		if i == 0 {
			return fmt.Errorf("%w: expected a parameter name at %q", ErrMalformed, s)
		}
		name := s[:i]
		s = trimOWS(s[i:])
		if s == "" || s[0] != '=' {
			return fmt.Errorf("%w: parameter %q has no value", ErrMalformed, name)
		}
		s = trimOWS(s[1:])
		var value string
		if s != "" && s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return fmt.Errorf("%w: parameter %q has an unterminated quote", ErrMalformed, name)
			}
			value, s = s[1:1+end], s[2+end:]
			if strings.IndexByte(value, '\\') >= 0 {
				return fmt.Errorf("%w: parameter %q has an escape", ErrMalformed, name)
			}
		} else {
			i = 0
			for i < len(s) && (isTchar(s[i]) || s[i] == '=' || s[i] == '/') {
				i++
			}
			value, s = s[:i], s[i:]
		}
		if value == "" {
			return fmt.Errorf("%w: parameter %q is empty", ErrMalformed, name)
		}
		if err := fn(name, value); err != nil {
			return err
		}
		s = trimOWS(s)
		if s != "" && strings.IndexByte(seps, s[0]) < 0 {
			return fmt.Errorf("%w: expected a separator after parameter %q", ErrMalformed, name)
		}
	}
}

// trimOWS trims the optional whitespace of RFC 9110 §5.6.3.
func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}

// isTchar reports whether c may appear in an RFC 9110 §5.6.2 token.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isBase64URL(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}
