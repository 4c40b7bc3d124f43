package vapid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Sign returns the value of an Authorization header carrying a VAPID token
// (RFC 8292 §3): "vapid t=<jwt>, k=<public key>".
//
// audience is the origin of the push resource (scheme://host[:port]).
// subject, a mailto: or https: contact URI, is left out of the token if
// empty. expires must be in the future and at most 24 hours ahead when the
// push service checks it; Sign does not read the clock.
func Sign(key *ecdsa.PrivateKey, audience, subject string, expires time.Time) (string, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return "", fmt.Errorf("%w: not a P-256 private key", ErrBadKey)
	}
	if err := checkOrigin(audience); err != nil {
		return "", err
	}
	if subject != "" && !validSubject(subject) {
		return "", fmt.Errorf("%w: %q is not a mailto: or https: URI", ErrSubject, subject)
	}
	if expires.IsZero() {
		return "", fmt.Errorf("%w: no expiry given", ErrLifetime)
	}
	// MapClaims writes "aud" as a plain string, as RFC 8292 shows it;
	// RegisteredClaims would write a one-element array by default.
	claims := jwt.MapClaims{"aud": audience, "exp": expires.Unix()}
	if subject != "" {
		claims["sub"] = subject
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	pub, err := EncodePublicKey(&key.PublicKey)
	if err != nil {
		return "", err
	}
	return "vapid t=" + token + ", k=" + pub, nil
}
